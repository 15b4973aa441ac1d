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
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

__all__ = ["LEVEL_NAMES", "LogEntry", "LogRing", "level_name", "parse_level"]

# The levels an operator or LOG_LEVEL may choose. Nothing below DEBUG: hikari's TRACE level logs raw gateway
# payloads, which contain message content (P5).
LEVEL_NAMES: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ALIASES: Final = {"WARN": "WARNING", "FATAL": "CRITICAL", "EXCEPTION": "ERROR"}
_CORE_KEYS: Final = frozenset({"ts", "level", "logger", "event", "guild_id"})
_MAX_DEPTH: Final = 6


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

    __slots__ = ("_buf", "_capture_level", "_level_hook", "_lock", "_seq", "size")

    def __init__(self, size: int, *, capture_level: int | str = logging.INFO) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = size
        self._buf: deque[tuple[int, LogEntry]] = deque(maxlen=size)
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
        level = event_dict.get("level")
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
