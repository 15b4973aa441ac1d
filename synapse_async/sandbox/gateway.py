"""Discord gateway v10 over an aiohttp websocket, as hikari's shard implementation speaks it.

The protocol follows Discord's documentation and what `hikari/impl/shard.py` does: HELLO, IDENTIFY → READY and one
GUILD_CREATE per guild of the shard, heartbeats, RESUME with replay of missed dispatches, INVALID_SESSION,
RECONNECT, REQUEST_GUILD_MEMBERS → GUILD_MEMBERS_CHUNK, intent filtering, and `zlib-stream` transport compression.
Sessions outlive connections so that a dropped client can resume and receive exactly the dispatches it missed;
the fault-injection hooks (`drop_connection`, `replay_last`, `request_reconnect`, `invalidate_sessions`) exist so
tests can prove the app copes with reconnects and duplicate delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
import zlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from synapse_async.sandbox import payloads
from synapse_async.sandbox.world import World

_LOGGER = logging.getLogger("synapse_async.sandbox.gateway")

JSON = dict[str, Any]

# Opcodes
OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_PRESENCE_UPDATE = 3
OP_VOICE_STATE_UPDATE = 4
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_GUILD_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11
OP_REQUEST_CHANNEL_INFO = 43

# Close codes Discord uses
CLOSE_UNKNOWN_ERROR = 4000
CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_INVALID_SEQ = 4007
CLOSE_INVALID_SHARD = 4010
CLOSE_INVALID_INTENTS = 4013

# Intents
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_VOICE_STATES = 1 << 7
INTENT_GUILD_PRESENCES = 1 << 8
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_MESSAGE_CONTENT = 1 << 15
_ALL_INTENTS = (1 << 26) - 1

EVENT_INTENTS: dict[str, int] = {
    "GUILD_CREATE": INTENT_GUILDS,
    "GUILD_UPDATE": INTENT_GUILDS,
    "GUILD_DELETE": INTENT_GUILDS,
    "GUILD_ROLE_CREATE": INTENT_GUILDS,
    "GUILD_ROLE_UPDATE": INTENT_GUILDS,
    "GUILD_ROLE_DELETE": INTENT_GUILDS,
    "CHANNEL_CREATE": INTENT_GUILDS,
    "CHANNEL_UPDATE": INTENT_GUILDS,
    "CHANNEL_DELETE": INTENT_GUILDS,
    "THREAD_CREATE": INTENT_GUILDS,
    "THREAD_UPDATE": INTENT_GUILDS,
    "THREAD_DELETE": INTENT_GUILDS,
    "GUILD_MEMBER_ADD": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_UPDATE": INTENT_GUILD_MEMBERS,
    "GUILD_MEMBER_REMOVE": INTENT_GUILD_MEMBERS,
    "VOICE_STATE_UPDATE": INTENT_GUILD_VOICE_STATES,
    "MESSAGE_CREATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_UPDATE": INTENT_GUILD_MESSAGES,
    "MESSAGE_DELETE": INTENT_GUILD_MESSAGES,
    "MESSAGE_DELETE_BULK": INTENT_GUILD_MESSAGES,
    "MESSAGE_REACTION_ADD": INTENT_GUILD_MESSAGE_REACTIONS,
    "MESSAGE_REACTION_REMOVE": INTENT_GUILD_MESSAGE_REACTIONS,
}
"""The intent a guild event needs; events not listed (INTERACTION_CREATE, READY…) are always sent."""

_NOT_REPLAYABLE = frozenset({"READY", "RESUMED"})


def shard_for_guild(guild_id: int, shard_count: int) -> int:
    """Discord's sharding formula."""
    return (guild_id >> 22) % shard_count


@dataclass(slots=True)
class DispatchRecord:
    """One dispatch as delivered (or buffered) for a session."""

    seq: int
    t: str
    d: JSON
    at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class CloseRecord:
    """A close frame the client sent (hikari: 1000/1001 clean shutdown, 3000 for reconnects)."""

    code: int
    reason: str
    session_id: str | None
    shard: tuple[int, int] | None
    at: float = field(default_factory=time.monotonic)


class GatewayConnection:
    """One websocket connection. All frames go through `send`, which serialises compression and writes."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, compress: str | None) -> None:
        self.ws = ws
        self.transport = request.transport
        self.path = request.path
        self.query = dict(request.query)
        self.compress = compress
        self._compressor = zlib.compressobj() if compress == "zlib-stream" else None
        self._send_lock = asyncio.Lock()
        self.session: GatewaySession | None = None
        self.heartbeats = 0
        self.client_close: CloseRecord | None = None
        self.dropped = False
        self.alive = True
        self.sent_frames = 0

    async def send(self, payload: JSON) -> bool:
        """Send one payload; False when the socket is gone (the caller keeps the dispatch buffered)."""
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        async with self._send_lock:
            if not self.alive or self.ws.closed:
                return False
            try:
                if self._compressor is not None:
                    frame = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
                    await self.ws.send_bytes(frame)
                else:
                    await self.ws.send_str(data.decode())
            except (ConnectionError, RuntimeError) as exc:
                _LOGGER.debug("gateway send failed: %r", exc)
                self.alive = False
                return False
            self.sent_frames += 1
            return True

    def abort(self) -> None:
        """Kill the TCP connection without a close frame: the client sees an abnormal closure (1006)."""
        self.alive = False
        self.dropped = True
        if self.transport is not None:
            self.transport.abort()

    async def close(self, code: int, message: str = "") -> None:
        self.alive = False
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.close(code=code, message=message.encode())


class GatewaySession:
    """A gateway session: outlives its connection so the client can RESUME it."""

    def __init__(
        self,
        *,
        session_id: str,
        token: str,
        shard_id: int,
        shard_count: int,
        intents: int,
        large_threshold: int,
        buffer_size: int,
    ) -> None:
        self.session_id = session_id
        self.token = token
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.intents = intents
        self.large_threshold = large_threshold
        self.seq = 0
        self.buffer: deque[DispatchRecord] = deque(maxlen=buffer_size)
        self.connection: GatewayConnection | None = None
        self.lock = asyncio.Lock()
        self.ready = False
        self.guild_ids: list[int] = []
        self.disconnected_at: float | None = None
        self.resumes = 0

    @property
    def shard(self) -> tuple[int, int]:
        return (self.shard_id, self.shard_count)

    def owns(self, guild_id: int) -> bool:
        return shard_for_guild(guild_id, self.shard_count) == self.shard_id

    def dispatches(self, t: str | None = None) -> list[DispatchRecord]:
        return [r for r in self.buffer if t is None or r.t == t]


class GatewayServer:
    """The gateway endpoint plus the session registry and the dispatch fan-out."""

    def __init__(
        self,
        world: World,
        *,
        token: str,
        resume_url: Callable[[], str],
        heartbeat_interval_ms: int = 41250,
        buffer_size: int = 5000,
        resume_window_s: float = 300.0,
    ) -> None:
        self.world = world
        self.token = token
        self._resume_url = resume_url
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.buffer_size = buffer_size
        self.resume_window_s = resume_window_s
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: list[GatewayConnection] = []
        self.close_codes: list[CloseRecord] = []
        self.identify_payloads: list[JSON] = []
        self.received: list[JSON] = []
        self._changed = asyncio.Condition()

    # ------------------------------------------------------------------------------------------------ waiting

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until `predicate()` holds (re-checked on every gateway state change)."""
        async with asyncio.timeout(timeout):
            async with self._changed:
                await self._changed.wait_for(predicate)

    async def wait_for_ready(self, count: int = 1, timeout: float = 10.0) -> list[GatewaySession]:
        """Wait until `count` sessions are connected and have received READY and their GUILD_CREATEs."""
        await self.wait_for(lambda: len(self.live_sessions()) >= count, timeout)
        return self.live_sessions()

    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.ready and s.connection is not None and s.connection.alive]

    # ------------------------------------------------------------------------------------------------ endpoint

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """aiohttp handler for `/gateway` and the resume URL."""
        compress = request.query.get("compress")
        if compress not in (None, "zlib-stream"):
            return web.json_response({"message": f"unsupported compression {compress}", "code": 0}, status=400)
        if request.query.get("encoding", "json") != "json":
            return web.json_response({"message": "only json encoding is simulated", "code": 0}, status=400)
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = GatewayConnection(ws, request, compress)
        self.connections.append(conn)
        await conn.send(
            {
                "op": OP_HELLO,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ['["sandbox-gateway",{}]']},
                "s": None,
                "t": None,
            }
        )
        try:
            await self._receive_loop(conn)
        finally:
            conn.alive = False
            await self._detach(conn)
        return ws

    async def _receive_loop(self, conn: GatewayConnection) -> None:
        ws = conn.ws
        while True:
            try:
                msg = await ws.receive()
            except (ConnectionError, RuntimeError):
                return
            if msg.type == WSMsgType.CLOSE:
                session = conn.session
                record = CloseRecord(
                    code=int(msg.data),
                    reason=str(msg.extra or ""),
                    session_id=session.session_id if session else None,
                    shard=session.shard if session else None,
                )
                conn.client_close = record
                self.close_codes.append(record)
                _LOGGER.debug("client closed gateway connection with %s (%s)", record.code, record.reason)
                if session is not None and record.code in (1000, 1001):
                    # Discord ends the session when the client closes normally: it cannot be resumed.
                    self.sessions.pop(session.session_id, None)
                return
            if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return
            if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                continue
            raw = msg.data if isinstance(msg.data, str) else bytes(msg.data).decode()
            try:
                payload = json.loads(raw)
                op = int(payload["op"])
            except (ValueError, KeyError, TypeError):
                await conn.close(CLOSE_DECODE_ERROR, "Decode error")
                return
            self.received.append(payload)
            if not await self._handle_op(conn, op, payload.get("d")):
                return

    async def _handle_op(self, conn: GatewayConnection, op: int, data: Any) -> bool:
        """Handle one client payload; False ends the connection."""
        if op == OP_HEARTBEAT:
            conn.heartbeats += 1
            await conn.send({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
            return True
        if op == OP_IDENTIFY:
            return await self._identify(conn, data)
        if op == OP_RESUME:
            return await self._resume(conn, data)
        if conn.session is None:
            await conn.close(CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
            return False
        if op == OP_REQUEST_GUILD_MEMBERS:
            await self._request_guild_members(conn.session, data)
            return True
        if op in (OP_PRESENCE_UPDATE, OP_VOICE_STATE_UPDATE, OP_REQUEST_CHANNEL_INFO):
            return True
        await conn.close(CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
        return False

    # ------------------------------------------------------------------------------------------------ handshake

    async def _identify(self, conn: GatewayConnection, data: Any) -> bool:
        if conn.session is not None:
            await conn.close(CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return False
        if not isinstance(data, dict) or data.get("token") != self.token:
            await conn.close(CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return False
        self.identify_payloads.append(data)
        shard = data.get("shard") or [0, 1]
        try:
            shard_id, shard_count = int(shard[0]), int(shard[1])
        except (TypeError, ValueError, IndexError):
            await conn.close(CLOSE_INVALID_SHARD, "Invalid shard.")
            return False
        if shard_count < 1 or not 0 <= shard_id < shard_count:
            await conn.close(CLOSE_INVALID_SHARD, "Invalid shard.")
            return False
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents & ~_ALL_INTENTS:
            await conn.close(CLOSE_INVALID_INTENTS, "Invalid intent(s).")
            return False
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            token=data["token"],
            shard_id=shard_id,
            shard_count=shard_count,
            intents=intents,
            large_threshold=int(data.get("large_threshold") or 50),
            buffer_size=self.buffer_size,
        )
        guild_ids = [g for g in sorted(self.world.guilds) if session.owns(g)]
        session.guild_ids = guild_ids
        async with session.lock:
            session.connection = conn
            conn.session = session
            self.sessions[session.session_id] = session
            bot = self.world.bot_user
            ready = {
                "v": 10,
                "user": payloads.own_user_payload(bot),
                "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
                "session_id": session.session_id,
                "session_type": "normal",
                "resume_gateway_url": self._resume_url(),
                "shard": [shard_id, shard_count],
                "application": {"id": str(self.world.application_id), "flags": (1 << 14) | (1 << 18)},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "guild_join_requests": [],
                "user_settings": {},
                "geo_ordered_rtc_regions": ["sandbox"],
                "auth": {},
                "_trace": ['["sandbox-gateway",{}]'],
            }
            await self._send_locked(session, "READY", ready)
            for guild_id in guild_ids:
                guild = self.world.guilds.get(guild_id)
                if guild is None:
                    continue
                await self._send_locked(session, "GUILD_CREATE", self._guild_create(session, guild_id, True))
            session.ready = True
        await self._notify()
        return True

    def _guild_create(self, session: GatewaySession, guild_id: int, available: bool) -> JSON:
        return payloads.guild_create_payload(
            self.world,
            self.world.guilds[guild_id],
            available=available,
            include_all_members=bool(session.intents & INTENT_GUILD_PRESENCES),
            large_threshold=session.large_threshold,
        )

    async def _resume(self, conn: GatewayConnection, data: Any) -> bool:
        if conn.session is not None:
            await conn.close(CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return False
        if not isinstance(data, dict) or data.get("token") != self.token:
            await conn.close(CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return False
        session = self.sessions.get(str(data.get("session_id")))
        client_seq = data.get("seq")
        if session is None or not isinstance(client_seq, int):
            await conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return True
        if client_seq > session.seq:
            await conn.close(CLOSE_INVALID_SEQ, "Invalid seq.")
            return False
        oldest = session.buffer[0].seq if session.buffer else session.seq + 1
        if client_seq + 1 < oldest:
            # The missed dispatches fell out of the buffer: Discord cannot resume such a session either.
            self.sessions.pop(session.session_id, None)
            await conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return True
        async with session.lock:
            previous = session.connection
            if previous is not None and previous is not conn:
                previous.abort()
            session.connection = conn
            conn.session = session
            session.disconnected_at = None
            session.resumes += 1
            for record in list(session.buffer):
                if record.seq > client_seq:
                    await conn.send({"op": OP_DISPATCH, "t": record.t, "s": record.seq, "d": record.d})
            await self._send_locked(session, "RESUMED", {"_trace": ['["sandbox-gateway",{}]']})
        await self._notify()
        return True

    async def _detach(self, conn: GatewayConnection) -> None:
        session = conn.session
        if session is None:
            await self._notify()
            return
        async with session.lock:
            if session.connection is conn:
                session.connection = None
                session.disconnected_at = time.monotonic()
        await self._notify()

    # ------------------------------------------------------------------------------------------------ chunking

    async def _request_guild_members(self, session: GatewaySession, data: Any) -> None:
        if not isinstance(data, dict):
            return
        raw_ids = data.get("guild_id")
        guild_ids = raw_ids if isinstance(raw_ids, list) else [raw_ids]
        for raw in guild_ids:
            if raw is None:
                continue
            guild = self.world.guilds.get(int(raw))
            if guild is None or not session.owns(guild.id):
                continue
            members = list(guild.members.values())
            not_found: list[str] = []
            if data.get("user_ids"):
                wanted = [int(u) for u in data["user_ids"]]
                members = [guild.members[u] for u in wanted if u in guild.members]
                not_found = [str(u) for u in wanted if u not in guild.members]
            else:
                query = str(data.get("query") or "").lower()
                if query:
                    members = [m for m in members if self.world.user(m.user_id).username.lower().startswith(query)]
                limit = int(data.get("limit") or 0)
                if limit:
                    members = members[:limit]
            chunks = [members[i : i + 1000] for i in range(0, len(members), 1000)] or [[]]
            async with session.lock:
                for index, chunk in enumerate(chunks):
                    payload: JSON = {
                        "guild_id": str(guild.id),
                        "members": [payloads.member_payload(self.world, guild, m) for m in chunk],
                        "chunk_index": index,
                        "chunk_count": len(chunks),
                    }
                    if index == 0 and not_found:
                        payload["not_found"] = not_found
                    if data.get("nonce") is not None:
                        payload["nonce"] = data["nonce"]
                    if data.get("presences"):
                        payload["presences"] = []
                    await self._send_locked(session, "GUILD_MEMBERS_CHUNK", payload)

    # ------------------------------------------------------------------------------------------------ dispatch

    async def _send_locked(self, session: GatewaySession, t: str, d: JSON) -> int:
        """Assign the next sequence number, buffer the dispatch and send it if connected (caller holds the lock)."""
        session.seq += 1
        record = DispatchRecord(seq=session.seq, t=t, d=d)
        session.buffer.append(record)
        conn = session.connection
        if conn is not None and conn.alive:
            await conn.send({"op": OP_DISPATCH, "t": t, "s": record.seq, "d": d})
        return record.seq

    def _expire_sessions(self) -> None:
        now = time.monotonic()
        for session_id, session in list(self.sessions.items()):
            if session.disconnected_at is not None and now - session.disconnected_at > self.resume_window_s:
                del self.sessions[session_id]

    def _filter_for_intents(self, session: GatewaySession, t: str, d: JSON) -> JSON | None:
        needed = EVENT_INTENTS.get(t)
        if needed is not None and not session.intents & needed:
            return None
        if t in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not session.intents & INTENT_MESSAGE_CONTENT:
            mentioned = any(m.get("id") == str(self.world.bot_user_id) for m in d.get("mentions", ()))
            author_is_bot = d.get("author", {}).get("id") == str(self.world.bot_user_id)
            if not mentioned and not author_is_bot:
                d = {**d, "content": "", "embeds": [], "attachments": [], "components": []}
        return d

    async def dispatch(self, t: str, d: JSON, *, guild_id: int | None) -> list[int]:
        """Send a dispatch to every session whose shard owns `guild_id` (shard 0 when None) and has the intent.

        Returns the sequence number assigned in each receiving session. Disconnected but resumable sessions buffer
        the dispatch and get it on RESUME.
        """
        self._expire_sessions()
        seqs: list[int] = []
        for session in list(self.sessions.values()):
            if guild_id is None:
                if session.shard_id != 0:
                    continue
            elif not session.owns(guild_id):
                continue
            filtered = self._filter_for_intents(session, t, d)
            if filtered is None:
                continue
            # A session still identifying holds its lock until READY and its GUILD_CREATEs are out, so waiting for
            # the lock orders this dispatch after them instead of losing it.
            async with session.lock:
                if session.ready and session.session_id in self.sessions:
                    seqs.append(await self._send_locked(session, t, filtered))
        await self._notify()
        return seqs

    async def dispatch_guild_create(self, guild_id: int, *, available: bool = False) -> list[int]:
        """GUILD_CREATE for a guild the bot just joined (no `unavailable` key: hikari raises GuildJoinEvent), or
        with `available` for a guild coming back after an outage (GuildAvailableEvent)."""
        seqs: list[int] = []
        for session in list(self.sessions.values()):
            if session.owns(guild_id):
                async with session.lock:
                    if not session.ready or session.session_id not in self.sessions:
                        continue
                    if guild_id not in session.guild_ids:
                        session.guild_ids.append(guild_id)
                    seqs.append(
                        await self._send_locked(
                            session, "GUILD_CREATE", self._guild_create(session, guild_id, available)
                        )
                    )
        await self._notify()
        return seqs

    # ------------------------------------------------------------------------------------------------ faults

    def _select(self, shard_id: int | None) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if shard_id is None or s.shard_id == shard_id]

    async def drop_connection(self, shard_id: int | None = None, *, mode: Literal["abort", "close"] = "abort") -> int:
        """Cut the connection of every (or one shard's) session; the sessions stay resumable.

        `abort` kills TCP without a close frame (abnormal closure); `close` sends close code 4000 ("unknown error",
        which Discord clients treat as resumable). Returns the number of connections dropped.
        """
        dropped = 0
        for session in self._select(shard_id):
            async with session.lock:
                conn = session.connection
                if conn is None:
                    continue
                session.connection = None
                session.disconnected_at = time.monotonic()
            if mode == "abort":
                conn.abort()
            else:
                conn.dropped = True
                await conn.close(CLOSE_UNKNOWN_ERROR, "Unknown error.")
            dropped += 1
        await self._notify()
        return dropped

    async def request_reconnect(self, shard_id: int | None = None) -> int:
        """Send op 7 RECONNECT: the client closes (3000) and resumes."""
        count = 0
        for session in self._select(shard_id):
            conn = session.connection
            if conn is not None and await conn.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None}):
                count += 1
        return count

    async def invalidate_sessions(self, shard_id: int | None = None) -> int:
        """Forget sessions and drop their connections: the client's RESUME gets INVALID_SESSION and re-identifies."""
        sessions = self._select(shard_id)
        for session in sessions:
            self.sessions.pop(session.session_id, None)
            conn = session.connection
            session.connection = None
            if conn is not None:
                conn.abort()
        await self._notify()
        return len(sessions)

    async def replay_last(self, n: int, shard_id: int | None = None) -> list[int]:
        """Re-send the last `n` dispatches of each session with NEW sequence numbers (a duplicate delivery)."""
        seqs: list[int] = []
        for session in self._select(shard_id):
            async with session.lock:
                candidates = [r for r in session.buffer if r.t not in _NOT_REPLAYABLE]
                for record in candidates[-n:] if n > 0 else []:
                    seqs.append(await self._send_locked(session, record.t, record.d))
        await self._notify()
        return seqs

    # ------------------------------------------------------------------------------------------------ lifecycle

    async def close(self) -> None:
        """Close every connection with 1001 (server going away)."""
        for conn in list(self.connections):
            if conn.alive:
                await conn.close(1001, "Simulator stopping")

    def dispatched(self, t: str | None = None) -> list[tuple[GatewaySession, DispatchRecord]]:
        """Everything dispatched so far (per session), optionally of one type."""
        return [(s, r) for s in self.sessions.values() for r in s.dispatches(t)]

    def sessions_for(self, shard_ids: Sequence[int] | None = None) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if shard_ids is None or s.shard_id in shard_ids]
