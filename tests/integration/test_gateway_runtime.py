"""The whole Discord side inside the runtime: real hikari ↔ the simulator, real PostgreSQL (SPEC §3.2 step 9, §7).

The runtime runs in sandbox mode, so it starts the in-process simulator and connects its real `GatewayBot` to it
over loopback. Normalized events go to a `RecordingSink` instead of the pipeline, so each test sees exactly what
the normalizer produced.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import text

from synapse_async.bot.gateway import DiscordGateway
from synapse_async.db.urls import to_asyncpg_dsn
from synapse_async.domain.events import (
    MemberJoined,
    MemberLeft,
    MessageCreated,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ThreadCreated,
    VoiceStateChanged,
)
from synapse_async.domain.snowflakes import snowflake_time
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from synapse_async.sandbox.world import VoiceState
from tests.support import RecordingSink, get_json, make_runtime, wait_for

GUILD = 100000000000000001
ADMIN = 100000000000000010
ALICE = 100000000000001000
BOB = 100000000000001001
SECRET_TEXT = "the quick brown fox is a secret 🦊 https://example.com"


@pytest.fixture(scope="module")
async def sandbox(fresh_database: str) -> AsyncIterator[tuple[Runtime, DiscordSimulator, RecordingSink]]:
    sink = RecordingSink()
    rt = make_runtime(fresh_database, sink=sink)
    await rt.start()
    assert rt.simulator is not None and rt.components.cache is not None
    cache = rt.components.cache
    await wait_for(lambda: GUILD in cache.known_guild_ids())  # GUILD_CREATE follows READY
    yield rt, rt.simulator, sink
    await rt.shutdown()


async def _rows(rt: Runtime, sql: str) -> list[tuple[object, ...]]:
    assert rt.components.db is not None
    async with rt.components.db.engine.connect() as conn:
        return [tuple(r) for r in (await conn.execute(text(sql), {"g": GUILD})).all()]


async def test_guild_sync_writes_channels_roles_and_seeds_rarities(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    rt, sim, _ = sandbox
    channels = dict(await _rows(rt, "SELECT name, type FROM guild_channels WHERE guild_id = :g"))
    assert channels == {
        "Community": "category",
        "general": "text",
        "help": "text",
        "showcase": "forum",
        "Lounge": "voice",
        "AFK": "voice",
    }
    roles = {r[0] for r in await _rows(rt, "SELECT name FROM guild_roles WHERE guild_id = :g")}
    assert {"Admin", "Member", "@everyone"} <= roles
    rarities = await _rows(rt, "SELECT name FROM achievement_rarities WHERE guild_id = :g ORDER BY sort_order")
    assert [r[0] for r in rarities] == ["Common", "Uncommon", "Rare", "Epic", "Legendary"]
    cache = rt.components.cache
    assert cache is not None
    info = cache.guild(GUILD).info
    assert info is not None and info.name == "Sandbox" and info.afk_channel_id == sim.channel_id("AFK")
    assert rt.http_port is not None
    _status, health = await get_json(rt.http_port, "/health")
    assert health["gateway"]["shards"][0]["id"] == 0 and health["gateway"]["shards"][0]["state"] == "connected"
    assert (await get_json(rt.http_port, "/ready"))[0] == 200


async def test_channel_create_and_delete_reach_table_and_cache(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    rt, sim, _ = sandbox
    cache = rt.components.cache
    assert cache is not None
    channel_id = int(await sim.create_channel("announcements-x", "announcement", parent="Community"))
    await wait_for(lambda: channel_id in cache.guild(GUILD).channels)
    info = cache.guild(GUILD).channels[channel_id]
    assert (info.type, info.parent_id, info.deleted) == ("announcement", sim.channel_id("Community"), False)
    await sim.delete_channel(channel_id)
    await wait_for(lambda: cache.guild(GUILD).channels[channel_id].deleted)
    rows = await _rows(rt, f"SELECT deleted_at IS NOT NULL FROM guild_channels WHERE channel_id = {channel_id}")
    assert rows == [(True,)]


async def test_message_is_normalized_without_its_text(sandbox: tuple[Runtime, DiscordSimulator, RecordingSink]) -> None:
    _, sim, sink = sandbox
    text_in = SECRET_TEXT + " <@100000000000001001> ```code``` ```"
    message_id = int(await sim.message(ALICE, "general", text_in, attachments=2))
    await wait_for(lambda: any(e.message_id == message_id for e in sink.of(MessageCreated)))
    event = next(e for e in sink.of(MessageCreated) if e.message_id == message_id)
    assert event.reward_key == event.lake_key == f"msg:{message_id}"
    assert event.occurred_at == snowflake_time(message_id)
    assert (event.guild_id, event.channel_id, event.parent_id) == (GUILD, sim.channel_id("general"), None)
    assert event.author.user_id == ALICE
    meta = event.meta
    assert (meta.attachment_count, meta.link_count, meta.has_code_block, meta.mention_count) == (2, 1, True, 1)
    assert meta.length == len(text_in.strip())
    # P5: the text itself is nowhere in the event.
    flat = repr(dataclasses.asdict(event))
    assert "quick brown fox" not in flat and "example.com" not in flat
    assert not any("content" in f.name or "text" in f.name for f in dataclasses.fields(event))


async def test_gates_drop_bots_system_messages_and_webhooks(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    _rt, sim, sink = sandbox
    bot_user = int(await sim.join(username="helper-bot", bot=True))
    before = len(sink.of(MessageCreated))
    bot_message = int(await sim.message(bot_user, "general", "beep boop"))
    marker = int(await sim.message(BOB, "general", "marker message"))
    await wait_for(lambda: any(e.message_id == marker for e in sink.of(MessageCreated)))
    assert all(e.message_id != bot_message for e in sink.of(MessageCreated))
    assert len(sink.of(MessageCreated)) == before + 1
    assert not any(isinstance(e, MemberJoined) and e.member.user_id == bot_user for e in sink.events)
    # A reaction on the bot's message still resolves the author as a bot through the author index.
    await sim.react(ALICE, bot_message, "👍")
    await wait_for(lambda: any(e.message_id == bot_message for e in sink.of(ReactionAdded)))
    reaction = next(e for e in sink.of(ReactionAdded) if e.message_id == bot_message)
    assert (reaction.author_id, reaction.author_is_bot) == (bot_user, True)


async def test_reactions_threads_deletes_and_members(sandbox: tuple[Runtime, DiscordSimulator, RecordingSink]) -> None:
    _, sim, sink = sandbox
    message_id = int(await sim.message(BOB, "help", "how do I do this?"))
    await sim.react(ALICE, message_id, "👩‍💻")
    await sim.react(ALICE, message_id, "👩‍💻", remove=True)
    await wait_for(lambda: any(e.message_id == message_id for e in sink.of(ReactionRemoved)))
    added = next(e for e in sink.of(ReactionAdded) if e.message_id == message_id)
    assert added.author_id == BOB and not added.author_is_bot
    assert added.lake_key == f"radd:{message_id}:{ALICE}:u1f469-200d-1f4bb"
    assert (added.given_key, added.received_key) == (f"rg:{message_id}:{ALICE}", f"rr:{message_id}:{ALICE}")
    removed = next(e for e in sink.of(ReactionRemoved) if e.message_id == message_id)
    assert removed.lake_key == f"rrem:{message_id}:{ALICE}:u1f469-200d-1f4bb"

    created_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    thread_id = int(await sim.create_thread("general", ALICE, "a thread title", created_at=created_at))
    await wait_for(lambda: any(e.thread_id == thread_id for e in sink.of(ThreadCreated)))
    thread = next(e for e in sink.of(ThreadCreated) if e.thread_id == thread_id)
    assert thread.lake_key == thread.reward_key == f"thr:{thread_id}"
    assert (thread.parent_id, thread.owner.user_id, thread.title_length) == (sim.channel_id("general"), ALICE, 14)
    assert thread.occurred_at == created_at
    in_thread = int(await sim.message(BOB, thread_id, "reply in thread"))
    await wait_for(lambda: any(e.message_id == in_thread for e in sink.of(MessageCreated)))
    msg = next(e for e in sink.of(MessageCreated) if e.message_id == in_thread)
    assert (msg.channel_id, msg.parent_id) == (thread_id, sim.channel_id("general"))

    doomed = [int(await sim.message(BOB, "general", f"delete me {i}")) for i in range(3)]
    await sim.delete_message(doomed[0])
    await sim.delete_messages("general", doomed[1:])
    await wait_for(lambda: {e.message_id for e in sink.of(MessageDeleted)} >= set(doomed))
    deletes = {e.message_id: e for e in sink.of(MessageDeleted)}
    assert deletes[doomed[0]].bulk is False and deletes[doomed[1]].bulk is True
    assert deletes[doomed[2]].author_id == BOB and deletes[doomed[2]].lake_key == f"mdel:{doomed[2]}"

    newcomer = int(await sim.join(username="newcomer"))
    await wait_for(lambda: any(e.member.user_id == newcomer for e in sink.of(MemberJoined)))
    joined = next(e for e in sink.of(MemberJoined) if e.member.user_id == newcomer)
    assert joined.joined_at is not None and joined.occurred_at == joined.joined_at
    await sim.leave(newcomer)
    await wait_for(lambda: any(e.user_id == newcomer for e in sink.of(MemberLeft)))
    left = next(e for e in sink.of(MemberLeft) if e.user_id == newcomer)
    assert left.lake_key.startswith(f"ml:{newcomer}:") and left.lake_key == joined.lake_key.replace("mj:", "ml:")


async def test_voice_updates_are_classified_and_state_changes_record_nothing(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    _, sim, sink = sandbox
    lounge, afk = sim.channel_id("Lounge"), sim.channel_id("AFK")

    def mine() -> list[VoiceStateChanged]:
        return [e for e in sink.of(VoiceStateChanged) if e.user_id == BOB]

    await sim.voice(BOB, "Lounge")
    await sim.voice(BOB, "Lounge", self_mute=True)  # same channel: tracker only
    await sim.voice(BOB, "AFK")
    await sim.voice(BOB, None)
    await wait_for(lambda: len(mine()) >= 3)
    changes = [(e.change, e.before_channel_id, e.after_channel_id) for e in mine()]
    assert changes == [("join", None, lounge), ("move", lounge, afk), ("leave", afk, None)]
    assert mine()[0].lake_key.startswith(f"vj:{BOB}:{lounge}:")
    assert mine()[0].members_in_channel >= 1  # the joiner counts
    assert mine()[1].seconds_in_previous is not None and mine()[1].seconds_in_previous >= 0


async def test_guild_create_rebuilds_voice_at_once_and_never_overwrites_later_updates(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    """SPEC §7.3: the rebuild neither waits for the guild sync (which may retry, or fail) nor undoes newer updates."""
    rt, sim, _ = sandbox
    gateway = rt.gateway
    assert isinstance(gateway, DiscordGateway) and rt.database_url is not None
    tracker = gateway.normalizer.voice
    early, late, unseen = 100000000000001002, 100000000000001003, 100000000000001004
    await sim.voice(early, "Lounge")
    await wait_for(lambda: early in tracker.members(GUILD))
    # A join the bot never received (as if sent while it was disconnected): only the next GUILD_CREATE has it.
    sim.guild().voice_states[unseen] = VoiceState(unseen, sim.channel_id("Lounge"), "unseen-session")
    syncs = gateway.guild_syncs
    admin = await asyncpg.connect(to_asyncpg_dsn(rt.database_url))
    try:

        async def sync_waiting() -> bool:
            return bool(await admin.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"))

        async with admin.transaction():
            await admin.execute("SELECT 1 FROM guilds WHERE guild_id = $1 FOR UPDATE", GUILD)  # the sync waits
            await sim.guild_outage()
            await sim.guild_recovered()
            await wait_for(sync_waiting)
            await wait_for(lambda: unseen in tracker.members(GUILD))  # rebuilt while the sync is still stuck
            await sim.voice(late, "Lounge")
            await sim.voice(early, None)
            await wait_for(lambda: late in tracker.members(GUILD) and early not in tracker.members(GUILD))
        await wait_for(lambda: gateway.guild_syncs == syncs + 1)
        assert {early, late, unseen} & set(tracker.members(GUILD)) == {late, unseen}
    finally:
        await admin.close()
        for user in (late, unseen):
            await sim.voice(user, None)


async def test_resume_replays_missed_events_and_duplicates_keep_their_keys(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    _, sim, sink = sandbox
    await sim.drop_connection()
    missed = int(await sim.message(ALICE, "general", "sent while the bot was disconnected"))
    await wait_for(lambda: any(e.message_id == missed for e in sink.of(MessageCreated)), timeout=30)
    assert sum(e.message_id == missed for e in sink.of(MessageCreated)) == 1

    dup = int(await sim.message(BOB, "general", "delivered twice"))
    await wait_for(lambda: any(e.message_id == dup for e in sink.of(MessageCreated)))
    await sim.replay_last(1)
    await wait_for(lambda: sum(e.message_id == dup for e in sink.of(MessageCreated)) == 2)
    first, second = (e for e in sink.of(MessageCreated) if e.message_id == dup)
    assert first == second  # identical event, identical keys and event time
    assert first.reward_key == second.reward_key


async def test_sandbox_endpoints_inject_activity(sandbox: tuple[Runtime, DiscordSimulator, RecordingSink]) -> None:
    import aiohttp

    rt, sim, sink = sandbox
    base = f"http://127.0.0.1:{rt.http_port}"
    async with aiohttp.ClientSession() as http:
        body = {"user_id": str(ALICE), "channel_id": str(sim.channel_id("general")), "content": "hello from HTTP"}
        async with http.post(f"{base}/sandbox/messages", json=body) as resp:
            assert resp.status == 202
            created = await resp.json()
        assert isinstance(created["seq"], int)
        message_id = int(created["message_id"])
        async with http.post(f"{base}/sandbox/messages", json={"user_id": True, "channel_id": "x", "foo": 1}) as resp:
            assert resp.status == 400
            fields = {d["field"] for d in (await resp.json())["error"]["details"]}
        assert fields == {"user_id", "foo"} or fields == {"user_id", "foo", "channel_id"}
        async with http.get(f"{base}/sandbox/state") as resp:
            assert resp.status == 200
            assert (await resp.json())["guilds"][0]["id"] == str(GUILD)
    await wait_for(lambda: any(e.message_id == message_id for e in sink.of(MessageCreated)))


async def test_shutdown_closes_the_gateway_cleanly(fresh_database: str) -> None:
    rt = make_runtime(fresh_database)
    await rt.start()
    # Startup froze its heap before the gateway's first event (obs/heap.py); shutdown gives it back.
    assert rt.frozen_objects > 0
    assert gc.get_freeze_count() > 0  # (less than frozen_objects once some are freed by reference counting)
    sim = rt.simulator
    assert sim is not None
    await rt.shutdown()
    assert gc.get_freeze_count() == 0
    codes = [c.code for c in sim.close_codes]  # the simulator keeps its records after it stopped
    assert codes
    assert set(codes) <= {1000, 1001}


async def test_system_and_webhook_messages_are_gated(sandbox: tuple[Runtime, DiscordSimulator, RecordingSink]) -> None:
    from synapse_async.sandbox.world import MessageType

    _, sim, sink = sandbox
    general = sim.channel_id("general")
    system, _ = await sim.events.create_message(
        channel_id=general, author_id=ALICE, content="", message_type=MessageType.THREAD_CREATED
    )
    hooked, _ = await sim.events.create_message(channel_id=general, author_id=ALICE, content="hi", webhook_id=424242)
    marker = int(await sim.message(ALICE, "general", "a normal message after them"))
    await wait_for(lambda: any(e.message_id == marker for e in sink.of(MessageCreated)))
    seen = {e.message_id for e in sink.of(MessageCreated)}
    assert system.id not in seen
    assert hooked.id not in seen


async def test_member_update_refreshes_a_stored_name(sandbox: tuple[Runtime, DiscordSimulator, RecordingSink]) -> None:
    rt, sim, _ = sandbox
    assert rt.components.db is not None
    async with rt.components.db.sessions.begin() as s:
        await s.execute(
            text("INSERT INTO members (guild_id, user_id, display_name) VALUES (:g, :u, 'old name')"),
            {"g": GUILD, "u": BOB},
        )

    async def stored() -> str:
        rows = await _rows(rt, f"SELECT display_name FROM members WHERE guild_id = :g AND user_id = {BOB}")
        return str(rows[0][0])

    await sim.update_member(BOB, nick="Bob the Builder ✨")

    async def renamed() -> bool:
        return await stored() == "Bob the Builder ✨"

    await wait_for(renamed)
    # A member without a row gets none: names are refreshed only for known members (SPEC §7.1).
    await sim.update_member(ALICE, nick="Alice")
    marker = int(await sim.message(BOB, "general", "marker"))
    await wait_for(lambda: any(e.message_id == marker for e in sandbox[2].of(MessageCreated)))
    assert await _rows(rt, f"SELECT 1 FROM members WHERE guild_id = :g AND user_id = {ALICE}") == []


async def test_guild_sync_after_a_fresh_identify_is_a_no_op(
    sandbox: tuple[Runtime, DiscordSimulator, RecordingSink],
) -> None:
    rt, sim, _ = sandbox
    cache = rt.components.cache
    assert cache is not None and rt.gateway is not None
    gateway = rt.gateway
    syncs = gateway.guild_syncs  # type: ignore[attr-defined]
    reloads = dict(cache.reloads)
    await sim.invalidate_sessions()  # hikari must IDENTIFY again: READY + GUILD_CREATE repeat
    await wait_for(lambda: gateway.guild_syncs > syncs, timeout=30)  # type: ignore[attr-defined]
    changed = {k: v for k, v in cache.reloads.items() if v != reloads.get(k, 0)}
    assert not any(k.startswith(("guilds:", "guild_channels:", "achievement_rarities:")) for k in changed)
    rarities = await _rows(rt, "SELECT count(*) FROM achievement_rarities WHERE guild_id = :g")
    assert rarities == [(5,)]  # seeded once, never again
