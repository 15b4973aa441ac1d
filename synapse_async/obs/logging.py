"""Process-wide logging on structlog (SPEC §24.3, §3.2 step 2; technical debt items 8 and 9).

One pipeline for everything: our code logs through structlog, while hikari, aiohttp, asyncpg, SQLAlchemy and
Alembic log through the stdlib. Both end up in a single root-logger handler whose `ProcessorFormatter` runs the
same processors, so every line has the same shape (`ts`, `level`, `logger`, `event`, context) and the same
protections, whoever wrote it:

1. context: `structlog.contextvars` (request id, guild id, …) — contextvars rather than thread-locals because
   one event loop serves many guilds at once and each asyncio task has its own context copy;
2. `ts` (RFC 3339 UTC, milliseconds), `level`, `logger`; exceptions become one `exception` string field, so a
   traceback can never break the one-object-per-line format;
3. P5: secret-named keys masked, content keys dropped, credential-shaped substrings masked;
4. user text escaped and capped (`safe_text`), any other overlong string capped;
5. snowflakes (`*_id` ints) rendered as strings, matching the API;
6. the entry is appended to the live-log ring, *then* rendered — only if it reaches the output level.

Level handling: the stdlib root level is min(output level, ring capture level), so an operator who lowers the
capture level to DEBUG gets DEBUG entries in the ring while stderr stays at `LOG_LEVEL`.

The output stream is UTF-8 whatever the locale, with `backslashreplace` so that logging can never raise
`UnicodeEncodeError` (a crash in a log call is worse than an odd character).
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, Final, Literal, TextIO, cast

import structlog
from structlog.types import EventDict, Processor, WrappedLogger
from typing_extensions import override

from synapse_async.obs.chatter import DemoteLibraryChatter
from synapse_async.obs.ring import LogRing, level_name, parse_level
from synapse_async.obs.sanitize import (
    USER_TEXT_KEYS,
    cap_long_text,
    escape_unsafe,
    is_content_key,
    is_secret_key,
    redact_value,
    safe_text,
)

__all__ = [
    "LONG_TEXT_LIMIT",
    "TRACEBACK_LIMIT",
    "USER_TEXT_LIMIT",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "current_context",
    "current_ring",
    "escape_user_text",
    "get_logger",
    "level_name",
    "parse_level",
    "redact_secrets",
    "reset_logging",
    "stringify_snowflakes",
    "unbind_context",
    "utf8_stream",
]

USER_TEXT_LIMIT: Final = 100
LONG_TEXT_LIMIT: Final = 1000
TRACEBACK_LIMIT: Final = 20_000
_MULTILINE_KEYS: Final = frozenset({"exception", "stack"})
_META_KEYS: Final = frozenset({"_record", "_from_structlog"})
_FIRST_KEYS: Final = ("ts", "level", "logger", "event")


# --- processors -------------------------------------------------------------------------------------------


def add_timestamp(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Add `ts` as RFC 3339 UTC with milliseconds (`2026-11-29T18:00:00.123Z`).

    Stdlib records carry their creation time, which is used when present so a line's time is when it was
    logged, not when it was formatted.
    """
    record = event_dict.get("_record")
    now = record.created if isinstance(record, logging.LogRecord) else time.time()
    millis = int(now * 1000) % 1000
    event_dict["ts"] = f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}.{millis:03d}Z"
    return event_dict


_stack_renderer: Final = structlog.processors.StackInfoRenderer()


def render_stack(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """Turn `stack_info` into a `stack` string for both structlog calls and stdlib records.

    structlog's `StackInfoRenderer` would capture the *formatter's* stack for a stdlib record, whose
    `stack_info` is already the right text, so that case is handled here.
    """
    stack = event_dict.get("stack_info")
    if isinstance(stack, str):
        del event_dict["stack_info"]
        event_dict["stack"] = stack
        return event_dict
    return _stack_renderer(logger, name, event_dict)


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Enforce "never logged" (SPEC §24.3, P5): content keys dropped, secret keys masked as "***".

    Values of all other keys are scanned recursively for nested secret keys (`headers={"Authorization": …}`)
    and credential-shaped substrings (bearer tokens, JWTs, bot tokens, URL passwords) — the latter matters for
    the `exception` and `event` texts, which nobody can vet by key.
    """
    for key in list(event_dict):
        if key in _META_KEYS:
            continue
        if is_content_key(key):
            del event_dict[key]
        elif is_secret_key(key):
            event_dict[key] = "***"
        else:
            event_dict[key] = redact_value(event_dict[key])
    return event_dict


def escape_user_text(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Escape and cap user-supplied text; cap anything else that is suspiciously long.

    Known user-text keys (`display_name`, `reason`, `q`, …) get `safe_text(…, 100)`. Other strings over 1000
    characters are capped at 1000 as defence in depth (a forgotten key, a huge library message). Tracebacks and
    stacks keep their line structure but are bounded and have unsafe characters escaped, since exception
    messages often quote user input.
    """
    for key, value in event_dict.items():
        if key in _META_KEYS or value is None or isinstance(value, bool | int | float):
            continue
        if key in USER_TEXT_KEYS:
            event_dict[key] = safe_text(value, USER_TEXT_LIMIT)
        elif isinstance(value, str):
            if key in _MULTILINE_KEYS:
                event_dict[key] = cap_long_text(value, TRACEBACK_LIMIT)
            elif len(value) > LONG_TEXT_LIMIT:
                event_dict[key] = safe_text(value, LONG_TEXT_LIMIT)
    return event_dict


def stringify_snowflakes(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Render `*_id` ints (and `*_ids` collections of ints) as strings, like the API does.

    Discord snowflakes exceed 2**53, so JSON consumers in JavaScript would silently round them; strings also
    make `guild_id` compare equal between the ring filter, the API and the log aggregator.
    """
    for key, value in event_dict.items():
        if key.endswith("_id") and isinstance(value, int) and not isinstance(value, bool):
            event_dict[key] = str(value)
        elif key.endswith("_ids") and isinstance(value, list | tuple | set | frozenset):
            event_dict[key] = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return event_dict


def _json_default(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, BaseException):
        return repr(value)
    return str(value)


def render_json(_: WrappedLogger, __: str, event_dict: EventDict) -> str:
    """One JSON object per line, `ts`, `level`, `logger`, `event` first (for people reading raw lines).

    `ensure_ascii=False` keeps names and emoji readable. `json.dumps` escapes C0 controls but leaves DEL, C1
    controls, U+2028/U+2029, bidi controls and lone surrogates raw; these are escaped afterwards. That is safe
    on the finished line because such characters can only occur inside JSON strings, where `\\uXXXX` is a valid
    escape that decodes to the same character.
    """
    ordered = {key: event_dict[key] for key in _FIRST_KEYS if key in event_dict}
    ordered.update((key, value) for key, value in event_dict.items() if key not in ordered)
    line = json.dumps(ordered, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return escape_unsafe(line)


class ConsoleRenderer:
    """`LOG_FORMAT=console`: structlog's human renderer, with every key and string value escaped first.

    The JSON renderer escapes the finished line, which is not possible here: the console line may carry the
    renderer's own colour escapes. So ESC, the other controls, U+2028/U+2029 and bidi controls are escaped in
    each key and top-level string (tracebacks keep their newlines, like `cap_long_text`); nested containers are
    rendered with `repr`, which escapes all of these already.
    """

    def __init__(self, *, colors: bool) -> None:
        self._inner = structlog.dev.ConsoleRenderer(
            colors=colors, timestamp_key="ts", exception_formatter=structlog.dev.plain_traceback
        )

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        escaped: EventDict = {}
        for key, value in event_dict.items():
            if isinstance(value, str):
                multiline = key in _MULTILINE_KEYS
                value = "\n".join(escape_unsafe(p) for p in value.split("\n")) if multiline else escape_unsafe(value)
            escaped[escape_unsafe(key) if isinstance(key, str) else key] = value
        return self._inner(logger, name, escaped)


class _Sink:
    """Last formatter step: record the entry in the ring, then render it if it reaches the output level.

    Returns "" for entries below the output level (captured for the ring only); the handler writes nothing then.
    """

    def __init__(self, renderer: Processor, output_level: int, ring: LogRing | None) -> None:
        self.renderer = renderer
        self.output_level = output_level
        self.ring = ring

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> str:
        record = event_dict.pop("_record", None)
        event_dict.pop("_from_structlog", None)
        levelno = record.levelno if isinstance(record, logging.LogRecord) else logging.INFO
        if self.ring is not None:
            self.ring.append(event_dict, levelno=levelno)
        if levelno < self.output_level:
            return ""
        return cast(str, self.renderer(logger, name, event_dict))


class _Handler(logging.StreamHandler[TextIO]):
    """Root handler for structlog and stdlib records alike; tagged so `configure_logging` can replace it."""

    def __init__(self, stream: TextIO, sink: _Sink) -> None:
        super().__init__(stream)
        self.sink = sink

    @override
    def emit(self, record: logging.LogRecord) -> None:
        ring = self.sink.ring
        floor = min(self.sink.output_level, ring.capture_level) if ring is not None else self.sink.output_level
        # Child loggers with their own lower level still propagate here; skip the processors for those records.
        if record.levelno < floor:
            return
        try:
            line = self.format(record)
            if line:
                self.stream.write(line + self.terminator)
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


# --- configuration ------------------------------------------------------------------------------------------


def utf8_stream(stream: TextIO) -> TextIO:
    """Return a text stream that writes UTF-8 with `backslashreplace`, whatever the locale (SPEC §3.2, §25).

    Under `LC_ALL=C` Python opens stderr as ASCII; a display name with an emoji would then come out as an
    escape at best. A `TextIOWrapper` is reconfigured in place (same object, so other writers stay ordered);
    otherwise its byte buffer is wrapped. A stream without a byte buffer (StringIO) cannot mis-encode.
    """
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
    if encoding in ("utf-8", "utf8") and getattr(stream, "errors", None) == "backslashreplace":
        return stream
    if isinstance(stream, io.TextIOWrapper):
        try:
            stream.reconfigure(encoding="utf-8", errors="backslashreplace")
        except (ValueError, OSError, io.UnsupportedOperation):
            pass
        else:
            return stream
    buffer = getattr(stream, "buffer", None)
    if isinstance(buffer, io.BufferedIOBase | io.RawIOBase):
        return io.TextIOWrapper(
            cast(Any, buffer), encoding="utf-8", errors="backslashreplace", line_buffering=True, write_through=True
        )
    return stream


_current_ring: LogRing | None = None


def _apply_root_level(output_level: int, ring: LogRing | None) -> None:
    level = min(output_level, ring.capture_level) if ring is not None else output_level
    logging.getLogger().setLevel(level)


def configure_logging(
    *,
    level: str = "INFO",
    fmt: Literal["json", "console", "auto"] = "json",
    ring: LogRing | None = None,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and the stdlib root logger so that every record goes through one pipeline.

    `level` is the output level (LOG_LEVEL); `fmt` is LOG_FORMAT (`json`: one object per line; `console`:
    structlog's ConsoleRenderer, for people at a terminal); `ring` receives every entry at or above its capture
    level, before rendering; `stream` defaults to stderr made UTF-8 (see `utf8_stream`).

    Safe to call repeatedly: our previous handler is replaced, and so are plain `StreamHandler`s left by
    `logging.basicConfig` or a library's default set-up (they would print every line twice, unformatted).
    Other handlers — pytest's capture, a test's collector — are left alone.
    """
    global _current_ring
    output_level = parse_level(level)
    if fmt not in ("json", "console", "auto"):
        raise ValueError(f"unknown log format {fmt!r}; expected 'json', 'console' or 'auto'")
    out = stream if stream is not None else utf8_stream(sys.stderr)
    isatty = getattr(out, "isatty", None)
    on_terminal = bool(isatty()) if callable(isatty) else False
    if fmt == "auto":  # people at a terminal read the console form; pipes, files and collectors get JSON
        fmt = "console" if on_terminal else "json"

    renderer: Processor = render_json if fmt == "json" else ConsoleRenderer(colors=on_terminal)

    before: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
    ]
    after: list[Processor] = [
        add_timestamp,
        render_stack,
        structlog.processors.format_exc_info,
        redact_secrets,
        escape_user_text,
        stringify_snowflakes,
    ]
    sink = _Sink(renderer, output_level, ring)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*before, structlog.stdlib.ExtraAdder(), *after],
        processors=[sink],
        use_get_message=True,
        pass_foreign_args=False,
    )
    handler = _Handler(out, sink)
    handler.setFormatter(formatter)
    handler.addFilter(DemoteLibraryChatter())

    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler) or type(old) is logging.StreamHandler:
            root.removeHandler(old)
    root.addHandler(handler)

    if _current_ring is not None and _current_ring is not ring:
        _current_ring.set_level_hook(None)
    _current_ring = ring
    if ring is not None:
        ring.set_level_hook(lambda _level: _apply_root_level(output_level, ring))
    _apply_root_level(output_level, ring)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *before,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *after,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        context_class=dict,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: reconfiguring (tests, a level change) must reach loggers created at import time.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo `configure_logging`: remove our root handler, detach the ring, restore structlog's defaults.

    For tests and for embedding code that wants its own logging set-up back; other handlers stay.
    """
    global _current_ring
    root = logging.getLogger()
    for old in list(root.handlers):
        if isinstance(old, _Handler):
            root.removeHandler(old)
    if _current_ring is not None:
        _current_ring.set_level_hook(None)
        _current_ring = None
    root.setLevel(logging.WARNING)
    structlog.reset_defaults()


def current_ring() -> LogRing | None:
    """The live-log ring `configure_logging` feeds (None when this process captures none), for the log routes."""
    return _current_ring


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger named `name` (use the module's `__name__`); usable before `configure_logging`."""
    return structlog.stdlib.get_logger(name)


def bind_context(**kw: object) -> None:
    """Bind keys (request_id, guild_id, …) to every log line of the current task/context from now on."""
    structlog.contextvars.bind_contextvars(**kw)


def unbind_context(*keys: str) -> None:
    """Remove the given keys from the current context."""
    structlog.contextvars.unbind_contextvars(*keys)


def clear_context() -> None:
    """Remove every bound key from the current context (start of a request or event)."""
    structlog.contextvars.clear_contextvars()


@contextmanager
def bound_context(**kw: object) -> Iterator[None]:
    """Bind keys for the duration of a `with` block, restoring the previous values afterwards."""
    with structlog.contextvars.bound_contextvars(**kw):
        yield


def current_context() -> Mapping[str, object]:
    """The keys bound in the current context (for code that forwards them, e.g. into a worker thread)."""
    return structlog.contextvars.get_contextvars()
