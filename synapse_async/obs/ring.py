"""The live-log ring buffer behind `GET …/logs` and `GET /api/admin/logs` (SPEC §20, §24.3).

Each process keeps its last `LOG_BUFFER_SIZE` structured entries in memory so admins can look at recent logs
without access to the host. Entries get strictly increasing sequence numbers so that a client can poll with
`after_seq` and neither miss nor repeat entries, even after the buffer has wrapped (a gap between the client's
last seq and the oldest retained seq tells it that entries were lost).

The capture level is separate from the output level: an operator can capture DEBUG for a while to investigate
one guild without flooding stderr, and the change applies only to entries recorded from then on (entries are
never re-filtered retroactively; they were either captured or not).

Entries are copied into plain JSON-compatible values on append, so the API can serialise them directly and no
live object (a model, a record, a connection) is kept alive by the log.

Guild admins read their guild's entries from a ring of its own (issue 21 item 6): one ring for everything would
let anonymous garbage requests, or a busy guild, push every other guild's entries out. So each entry goes to the
operator ring (`LOG_BUFFER_SIZE`, everything), and an entry tagged with a guild also to that guild's ring
(`guild_size` entries; at most `max_guilds` rings, the least recently written dropped first), unless it was
logged while serving an unauthenticated request (`operator_only`). A guild's copy carries no traceback, stack
or exception text (they quote SQL, paths and other guilds' data): only an `error_id` that the operator entry
carries too, so an operator can find the full text.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

__all__ = [
    "LEVEL_NAMES",
    "LogEntry",
    "LogRing",
    "level_name",
    "operator_only",
    "parse_level",
    "reset_operator_only",
    "set_operator_only",
]

# The levels an operator or LOG_LEVEL may choose. Nothing below DEBUG: hikari's TRACE level logs raw gateway
# payloads, which contain message content (P5).
LEVEL_NAMES: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ALIASES: Final = {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR"}
_CORE_KEYS: Final = frozenset({"ts", "level", "logger", "event", "guild_id"})
_MAX_DEPTH: Final = 6
_ERROR_KEYS: Final = frozenset({"exception", "stack", "exc_info", "error"})
"""Fields a guild's copy of an entry never carries: tracebacks and exception text (SPEC §24.3)."""
GUILD_RING_SIZE: Final = 200
MAX_GUILD_RINGS: Final = 1000

_operator_only: contextvars.ContextVar[bool] = contextvars.ContextVar("log_operator_only", default=False)


def set_operator_only(value: bool) -> contextvars.Token[bool]:
    """Mark what the current context logs from now on as operator-only (an unauthenticated request) or not."""
    return _operator_only.set(value)


def reset_operator_only(token: contextvars.Token[bool]) -> None:
    _operator_only.reset(token)


@contextmanager
def operator_only(value: bool = True) -> Iterator[None]:
    """Entries logged inside the block go to the operator ring only (or, with False, to guild rings as well)."""
    token = _operator_only.set(value)
    try:
        yield
    finally:
        _operator_only.reset(token)


def parse_level(name: str | int) -> int:
    """Turn a level name (`"info"`, `"WARNING"`, `"warn"`) into its stdlib number; ValueError if unknown.

    Only the five standard levels are accepted, so the API can return 400 for anything else and nobody can
    enable TRACE-level payload logging through it. Ints are accepted when they are one of those levels.
    """
    if isinstance(name, int) and not isinstance(name, bool):
        if name in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
            return name
        raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVEL_NAMES)}")
    if not isinstance(name, str):
        raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVEL_NAMES)}")
    upper = name.strip().upper()
    upper = _ALIASES.get(upper, upper)
    if upper not in LEVEL_NAMES:
        raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVEL_NAMES)}")
    return int(getattr(logging, upper))


def level_name(level: int) -> str:
    """Lower-case name of a stdlib level number, as it appears in log lines (`"warning"`)."""
    return logging.getLevelName(level).lower()


def _levelno_of(name: object) -> int:
    """Best-effort number for the `level` of an event dict; unknown names (custom levels) count as INFO."""
    if isinstance(name, str):
        upper = name.upper()
        upper = _ALIASES.get(upper, upper)
        number = logging.getLevelNamesMapping().get(upper)
        if number is not None:
            return number
    return logging.INFO


def _jsonable(value: object, depth: int = 0) -> object:
    """A JSON-compatible copy of `value`: containers copied, unknown objects turned into their `str()`."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if depth >= _MAX_DEPTH:
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v, depth + 1) for v in value]
    return str(value)


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One captured log entry. `fields` holds the bound context and keyword values, already sanitised."""

    seq: int
    ts: str
    level: str
    logger: str
    event: str
    guild_id: str | None
    fields: dict[str, object]

    def as_dict(self) -> dict[str, object]:
        """The entry as the JSON object the log endpoints return."""
        return {
            "seq": self.seq,
            "ts": self.ts,
            "level": self.level,
            "logger": self.logger,
            "event": self.event,
            "guild_id": self.guild_id,
            "fields": dict(self.fields),
        }


class LogRing:
    """Bounded, thread-safe buffer of the most recent structured log entries with sequence numbers.

    Thread-safe because worker threads (import parsing) and library threads log too; a lock is cheap next to
    rendering a line, and `entries` copies under it so readers never see a half-appended state.
    """

    __slots__ = (
        "_buf",
        "_capture_level",
        "_guilds",
        "_level_hook",
        "_lock",
        "_seq",
        "guild_size",
        "max_guilds",
        "size",
    )

    def __init__(
        self,
        size: int,
        *,
        capture_level: int | str = logging.INFO,
        guild_size: int | None = None,
        max_guilds: int = MAX_GUILD_RINGS,
    ) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self.guild_size = guild_size if guild_size is not None else min(size, GUILD_RING_SIZE)
        self.max_guilds = max_guilds
        self._buf: deque[tuple[int, LogEntry]] = deque(maxlen=size)
        self._guilds: OrderedDict[str, deque[tuple[int, LogEntry]]] = OrderedDict()
        self._lock = threading.Lock()
        self._seq = 0
        self._capture_level = parse_level(capture_level)
        self._level_hook: Callable[[int], None] | None = None

    @property
    def capture_level(self) -> int:
        """Minimum stdlib level recorded from now on (an operator may change it at run time, §24.3)."""
        return self._capture_level

    @capture_level.setter
    def capture_level(self, level: int) -> None:
        self._capture_level = parse_level(level)
        hook = self._level_hook
        if hook is not None:
            # Lets `configure_logging` lower the stdlib root level so that DEBUG records are created at all.
            hook(self._capture_level)

    def set_level_hook(self, hook: Callable[[int], None] | None) -> None:
        """Register the callback run after every capture-level change (one hook; None removes it)."""
        self._level_hook = hook

    def append(self, event_dict: Mapping[str, object], *, levelno: int | None = None) -> None:
        """Record an event dict if its level is at least the capture level; otherwise ignore it.

        `levelno` is the stdlib number when the caller knows it (the logging handler does); otherwise it is
        derived from `event_dict["level"]`. Keys starting with "_" are processor metadata and are not kept.
        Dropped entries consume no sequence number, so sequence numbers in the buffer are contiguous.
        """
        number = levelno if levelno is not None else _levelno_of(event_dict.get("level"))
        if number < self._capture_level:
            return
        ts = event_dict.get("ts")
        guild = event_dict.get("guild_id")
        fields = {k: _jsonable(v) for k, v in event_dict.items() if k not in _CORE_KEYS and not k.startswith("_")}
        hidden = _ERROR_KEYS.intersection(fields)
        if hidden:
            fields["error_id"] = uuid.uuid4().hex[:16]
        level = event_dict.get("level")
        to_guild = guild is not None and not _operator_only.get()
        with self._lock:
            self._seq += 1
            entry = LogEntry(
                seq=self._seq,
                ts=ts if isinstance(ts, str) else _now_rfc3339(),
                level=level.lower() if isinstance(level, str) else level_name(number),
                logger=str(event_dict.get("logger", "")),
                event=str(event_dict.get("event", "")),
                guild_id=None if guild is None else str(guild),
                fields=fields,
            )
            self._buf.append((number, entry))
            if to_guild:
                shown = replace(entry, fields={k: v for k, v in fields.items() if k not in hidden}) if hidden else entry
                self._guild_ring(str(guild)).append((number, shown))

    def _guild_ring(self, guild: str) -> deque[tuple[int, LogEntry]]:
        """The guild's ring, made on first use; the least recently written ring goes when there are too many."""
        ring = self._guilds.get(guild)
        if ring is None:
            ring = self._guilds[guild] = deque(maxlen=self.guild_size)
            while len(self._guilds) > self.max_guilds:
                self._guilds.popitem(last=False)
        else:
            self._guilds.move_to_end(guild)
        return ring

    def guild_entries(
        self, guild_id: str | int, *, after_seq: int = 0, min_level: str | None = None, limit: int = 100
    ) -> list[LogEntry]:
        """What a guild admin may see: the guild's own ring (no traceback or exception text), in ascending seq;
        `after_seq` and `limit` as in `entries`."""
        if limit <= 0:
            return []
        floor = parse_level(min_level) if min_level is not None else None
        with self._lock:
            ring = self._guilds.get(str(guild_id))
            items = [] if ring is None else [e for n, e in ring if floor is None or n >= floor]
        if after_seq > 0:
            return [e for e in items if e.seq > after_seq][:limit]
        return items[-limit:]

    def guild_first_seq(self, guild_id: str | int) -> int:
        """Sequence number of the oldest entry the guild's ring still holds (last_seq + 1 when empty)."""
        with self._lock:
            ring = self._guilds.get(str(guild_id))
            return ring[0][1].seq if ring else self._seq + 1

    def entries(
        self,
        *,
        after_seq: int = 0,
        min_level: str | None = None,
        guild_id: str | None = None,
        logger: str | None = None,
        limit: int = 100,
    ) -> list[LogEntry]:
        """Matching entries in ascending seq order.

        - `after_seq > 0`: the *oldest* `limit` matches with seq > after_seq, so a poller can page forward
          without gaps;
        - `after_seq <= 0` (first call): the *newest* `limit` matches, so a log view opens on what just happened.

        `min_level` is a level name (ValueError if unknown); `guild_id` keeps only entries tagged with that guild
        (guild admins see nothing else); `logger` matches the logger or its children (`"hikari"` matches
        `"hikari.gateway"`).
        """
        if limit <= 0:
            return []
        floor = parse_level(min_level) if min_level is not None else None
        guild = None if guild_id is None else str(guild_id)
        prefix = f"{logger}."

        def keep(item: tuple[int, LogEntry]) -> bool:
            number, entry = item
            if floor is not None and number < floor:
                return False
            if guild is not None and entry.guild_id != guild:
                return False
            return logger is None or entry.logger == logger or entry.logger.startswith(prefix)

        with self._lock:
            if not self._buf:
                return []
            if after_seq > 0:
                # Sequence numbers in the buffer are contiguous, so the first candidate's index is known.
                start = max(0, after_seq - self._buf[0][1].seq + 1)
                matches = itertools.islice(filter(keep, itertools.islice(self._buf, start, None)), limit)
                return [entry for _, entry in matches]
            newest = itertools.islice(filter(keep, reversed(self._buf)), limit)
            found = [entry for _, entry in newest]
        found.reverse()
        return found

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest entry ever recorded (0 before the first)."""
        return self._seq

    @property
    def first_seq(self) -> int:
        """Sequence number of the oldest entry still held (last_seq + 1 when empty)."""
        with self._lock:
            return self._buf[0][1].seq if self._buf else self._seq + 1

    def __len__(self) -> int:
        return len(self._buf)


def _now_rfc3339() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
