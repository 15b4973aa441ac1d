"""Logging (SPEC §24.3): JSON lines, one pipeline for structlog and stdlib, sanitising, P5, the live-log ring.

No mocks: every test configures the real pipeline against an in-memory text stream (or a real subprocess for
the locale test) and parses what came out.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from synapse_async.obs import (
    LogRing,
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    get_logger,
    parse_level,
    reset_logging,
    safe_text,
    unbind_context,
    utf8_stream,
)
from synapse_async.obs.ring import operator_only
from synapse_async.obs.sanitize import is_content_key, is_secret_key, scrub_secrets

TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
EMOJI = "👩‍💻"  # woman technologist: a ZWJ sequence, so escaping the joiner would visibly break it
HOSTILE_NAME = "Eve\nINFO fake line\r\x1b[31mred\u202eevil\u2028sep" + EMOJI
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, LogRing]]:
    """JSON logging at INFO into a StringIO, with a ring; fully undone afterwards."""
    stream = io.StringIO()
    ring = LogRing(1000)
    configure_logging(level="INFO", fmt="json", ring=ring, stream=stream)
    clear_context()
    yield stream, ring
    clear_context()
    reset_logging()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    """Parse the stream as JSON lines; fails the test if any physical line is not a JSON object."""
    raw = stream.getvalue()
    assert raw.endswith("\n") or raw == ""
    out = []
    for line in raw.split("\n")[:-1]:
        obj = json.loads(line)
        assert isinstance(obj, dict), line
        out.append(obj)
    return out


# --- format ------------------------------------------------------------------------------------------------


def test_every_line_is_json_with_core_keys(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    log = get_logger("synapse_async.pipeline")
    log.info("event.processed", duration_ms=12.5, event_type="message")
    log.warning("lane %s is slow", 3)
    log.debug("below the output level")

    out = lines(stream)
    assert [o["event"] for o in out] == ["event.processed", "lane 3 is slow"]
    for obj in out:
        assert list(obj)[:4] == ["ts", "level", "logger", "event"]
        assert isinstance(obj["ts"], str)
        assert TS_RE.match(obj["ts"]), obj["ts"]
        assert obj["logger"] == "synapse_async.pipeline"
    assert [o["level"] for o in out] == ["info", "warning"]
    assert out[0]["duration_ms"] == 12.5
    assert out[0]["event_type"] == "message"


def test_stdlib_records_use_the_same_renderer(captured: tuple[io.StringIO, LogRing]) -> None:
    """hikari/aiohttp/asyncpg log through the stdlib; their records must come out as the same JSON lines."""
    stream, _ = captured
    logging.getLogger("hikari.gateway").warning("shard %s heartbeat late", 2, extra={"shard_id": 2, "latency_ms": 950})
    logging.getLogger("aiohttp.server").info("checked out")
    logging.getLogger("aiohttp.client").debug("below the output level")

    out = lines(stream)
    assert len(out) == 2
    gateway, pool = out
    assert gateway["logger"] == "hikari.gateway"
    assert gateway["level"] == "warning"
    assert gateway["event"] == "shard 2 heartbeat late"
    assert gateway["shard_id"] == "2"  # `extra=` becomes structured context (technical debt item 8)
    assert gateway["latency_ms"] == 950
    assert isinstance(gateway["ts"], str)
    assert TS_RE.match(gateway["ts"])
    assert pool["logger"] == "aiohttp.server"
    assert pool["level"] == "info"


def test_exceptions_are_one_line_with_an_exception_field(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    log = get_logger("synapse_async.tasks")
    try:
        raise ZeroDivisionError("ratio of nothing")
    except ZeroDivisionError:
        log.exception("task.failed", job_id="j1")
        logging.getLogger("aiohttp.server").exception("Error handling request")

    raw = stream.getvalue()
    assert raw.count("\n") == 2, raw  # a raw traceback would add lines
    out = lines(stream)
    for obj in out:
        assert obj["level"] == "error"
        exc = obj["exception"]
        assert isinstance(exc, str)
        assert exc.startswith("Traceback (most recent call last):")
        assert "ZeroDivisionError: ratio of nothing" in exc
    assert out[0]["job_id"] == "j1"


def test_console_format_is_human_readable_and_still_sanitised() -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="console", stream=stream)
    try:
        get_logger("synapse_async.bot").info("member.joined", display_name="Eve\nfake", user_id=42)
    finally:
        reset_logging()
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    assert "member.joined" in text
    assert "[info" in text
    assert "synapse_async.bot" in text
    assert "Eve\\u000afake" in text
    assert "user_id=" in text


def test_configure_twice_keeps_one_handler_and_foreign_handlers() -> None:
    """Re-configuring must not duplicate lines, and must leave other handlers (pytest, collectors) alone."""

    class Collector(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    collector = Collector()
    root = logging.getLogger()
    root.addHandler(collector)
    first, second = io.StringIO(), io.StringIO()
    try:
        configure_logging(stream=first)
        configure_logging(stream=second)
        get_logger("x").info("once")
    finally:
        root.removeHandler(collector)
        reset_logging()
    assert first.getvalue() == ""
    assert [o["event"] for o in lines(second)] == ["once"]
    assert [r.levelno for r in collector.records] == [logging.INFO]


def test_invalid_level_and_format_are_rejected() -> None:
    with pytest.raises(ValueError, match="level"):
        configure_logging(level="TRACE", stream=io.StringIO())
    with pytest.raises(ValueError, match="format"):
        configure_logging(fmt="xml", stream=io.StringIO())  # type: ignore[arg-type]
    assert parse_level("warn") == logging.WARNING
    assert parse_level("Debug") == logging.DEBUG


# --- user text ---------------------------------------------------------------------------------------------


def test_safe_text_escapes_controls_separators_and_bidi() -> None:
    assert safe_text("a\nb\rc\td\x1b[31m") == "a\\u000ab\\u000dc\\u0009d\\u001b[31m"
    assert safe_text("x\u2028y\u2029z") == "x\\u2028y\\u2029z"
    bidi = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u061c"
    assert safe_text(bidi) == "".join(f"\\u{ord(c):04x}" for c in bidi)
    assert safe_text("\x7f\x85\x9b") == "\\u007f\\u0085\\u009b"  # DEL, NEL, C1 CSI
    assert safe_text("é 中文 " + EMOJI) == "é 中文 " + EMOJI  # printable Unicode and ZWJ sequences stay
    assert safe_text(12345) == "12345"


def test_safe_text_caps_escaped_text_without_splitting_escapes() -> None:
    assert safe_text("a" * 100) == "a" * 100  # exactly at the cap: no ellipsis
    assert safe_text("a" * 101) == "a" * 100 + "…"
    # 97 + 6 > 100: the escape does not fit, and is dropped whole rather than cut to "\u0"
    assert safe_text("a" * 97 + "\n" + "b") == "a" * 97 + "…"
    assert safe_text("a" * 94 + "\n" + "b") == "a" * 94 + "\\u000a" + "…"
    # only 20 input characters, but 120 escaped ones: the cap is on what the log shows
    capped = safe_text("\x1b" * 20)
    assert capped == "\\u001b" * 16 + "…"
    assert safe_text("abcdef", limit=3) == "abc…"
    assert len(safe_text("x" * 1_000_000)) == 101


def test_hostile_display_name_is_escaped_and_capped(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, ring = captured
    long_name = HOSTILE_NAME * 10
    get_logger("synapse_async.bot").info(
        "member.renamed", display_name=HOSTILE_NAME, name=long_name, reason="spam\x1b[2J", guild_id=1
    )
    raw = stream.getvalue()
    assert raw.count("\n") == 1
    for forbidden in ("\r", "\x1b", "\u202e", "\u2028"):
        assert forbidden not in raw
    assert EMOJI in raw  # emoji survive as UTF-8, not as escapes

    (obj,) = lines(stream)
    shown = obj["display_name"]
    assert shown == ("Eve\\u000aINFO fake line\\u000d\\u001b[31mred\\u202eevil\\u2028sep" + EMOJI)
    capped = obj["name"]
    assert isinstance(capped, str)
    assert capped.endswith("…")
    assert len(capped) <= 101
    assert capped == safe_text(long_name)
    assert obj["reason"] == "spam\\u001b[2J"
    (entry,) = ring.entries()
    assert entry.fields["display_name"] == shown  # the live log shows the same escaped text


def test_other_unsafe_characters_never_reach_the_line_raw(captured: tuple[io.StringIO, LogRing]) -> None:
    """Defence in depth: a non-user key (`error`) or a foreign message with U+2028/bidi/C1 stays one clean line."""
    stream, _ = captured
    get_logger("x").warning("lookup.failed", error="bad\u2028name\u202e\x85")
    logging.getLogger("hikari.rest").warning("guild %s renamed to %s", 1, "a\u2029b\u2066c")
    raw = stream.getvalue()
    assert raw.count("\n") == 2
    for ch in ("\u2028", "\u2029", "\u202e", "\u2066", "\x85"):
        assert ch not in raw
    first, second = lines(stream)
    assert first["error"] == "bad\u2028name\u202e\x85"  # JSON escapes round-trip to the original value
    assert second["event"] == "guild 1 renamed to a\u2029b\u2066c"


def test_overlong_strings_are_capped(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    get_logger("x").info("import.report", detail="y" * 5000, q="z" * 300)
    (obj,) = lines(stream)
    assert obj["detail"] == "y" * 1000 + "…"
    assert obj["q"] == "z" * 100 + "…"


def test_traceback_with_user_text_stays_safe(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    try:
        raise ValueError("bad name \u202eevil\x1b[0m")
    except ValueError:
        get_logger("x").exception("import.failed")
    raw = stream.getvalue()
    assert "\u202e" not in raw
    assert "\x1b" not in raw
    (obj,) = lines(stream)
    exc = obj["exception"]
    assert isinstance(exc, str)
    assert "ValueError: bad name \\u202eevil\\u001b[0m" in exc


# --- never logged (P5) -------------------------------------------------------------------------------------


def test_secrets_are_masked_and_content_is_dropped(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, ring = captured
    get_logger("synapse_async.api").info(
        "auth.callback",
        token="t0ps3cret",
        access_token="acc123",
        Authorization="Bearer abc",
        cookie="session=1",
        client_secret="cs",
        password="hunter2",
        code="oauth-code-123",
        content="hello world, my message",
        message_content="another message",
        headers={"Authorization": "Bot xyz", "Set-Cookie": "a=b", "Accept": "application/json"},
        status_code=302,
        user_id=7,
    )
    logging.getLogger("aiohttp.access").info("callback", extra={"content": "leak", "csrf_token": "c"})
    raw = stream.getvalue()
    for secret in ("t0ps3cret", "acc123", "abc", "session=1", "hunter2", "oauth-code-123", "xyz", "a=b"):
        assert secret not in raw, secret
    assert "hello world" not in raw
    assert "another message" not in raw
    assert "leak" not in raw
    first, second = lines(stream)
    for key in ("token", "access_token", "Authorization", "cookie", "client_secret", "password", "code"):
        assert first[key] == "***", key
    assert "content" not in first
    assert "message_content" not in first
    assert first["headers"] == {"Authorization": "***", "Set-Cookie": "***", "Accept": "application/json"}
    assert first["status_code"] == 302  # `*_code` is not an OAuth code
    assert second["csrf_token"] == "***"
    assert "content" not in second
    # The live log is served over the API: it must not hold secrets either.
    assert all("content" not in e.fields and e.fields.get("token") in (None, "***") for e in ring.entries())
    assert "hunter2" not in json.dumps([e.as_dict() for e in ring.entries()])


def test_credential_shaped_text_is_masked_anywhere(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    log = get_logger("synapse_async.db")
    log.warning("connect.failed", error="could not connect to postgresql://bot:pa55word@db:5432/synapse")
    log.warning("discord.rejected", detail=f"header was Bearer {JWT[:40]} and jwt {JWT}")
    try:
        raise RuntimeError(f"token {JWT} was refused")
    except RuntimeError:
        log.exception("rest.failed")
    raw = stream.getvalue()
    assert "pa55word" not in raw
    assert JWT not in raw
    assert JWT[:40] not in raw
    first, second, third = lines(stream)
    assert first["error"] == "could not connect to postgresql://bot:***@db:5432/synapse"
    assert second["detail"] == "header was Bearer *** and jwt ***"
    exc = third["exception"]
    assert isinstance(exc, str)
    assert "RuntimeError: token *** was refused" in exc


def test_secret_key_rules() -> None:
    for key in ("token", "DISCORD_TOKEN", "refresh_token", "authorization", "Set-Cookie", "jwt_secret", "code"):
        assert is_secret_key(key), key
    for key in ("status_code", "exit_code", "author_id", "user_id", "name", "event_type"):
        assert not is_secret_key(key), key
    assert is_content_key("content")
    assert is_content_key("message_content")
    assert not is_content_key("content_type")
    assert scrub_secrets("Bot connected to the gateway") == "Bot connected to the gateway"


# --- context -----------------------------------------------------------------------------------------------


def test_context_binding_appears_and_clears(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    log = get_logger("synapse_async.api")
    bind_context(request_id="req-1", guild_id=123456789012345678, user_id=42)
    log.info("one")
    logging.getLogger("asyncpg").warning("two")  # stdlib records get the context too
    unbind_context("user_id")
    log.info("three")
    with bound_context(channel_id=99):
        log.info("four")
    log.info("five")
    clear_context()
    log.info("six")

    one, two, three, four, five, six = lines(stream)
    assert one["request_id"] == "req-1"
    assert one["guild_id"] == "123456789012345678"  # snowflakes are strings
    assert one["user_id"] == "42"
    assert two["request_id"] == "req-1"
    assert two["logger"] == "asyncpg"
    assert "user_id" not in three
    assert three["request_id"] == "req-1"
    assert four["channel_id"] == "99"
    assert "channel_id" not in five
    assert "request_id" not in six
    assert "guild_id" not in six


async def test_context_is_per_task(captured: tuple[io.StringIO, LogRing]) -> None:
    """Concurrent guild lanes must not see each other's context (contextvars, not globals)."""
    stream, _ = captured
    log = get_logger("synapse_async.pipeline")

    async def lane(guild_id: int) -> None:
        bind_context(guild_id=guild_id)
        for i in range(3):
            await asyncio.sleep(0)
            log.info("step", step=i, expected=str(guild_id))

    await asyncio.gather(lane(1), lane(2), lane(3))
    out = lines(stream)
    assert len(out) == 9
    assert all(o["guild_id"] == o["expected"] for o in out)


def test_snowflake_ids_render_as_strings(captured: tuple[io.StringIO, LogRing]) -> None:
    stream, _ = captured
    big = 1_234_567_890_123_456_789
    get_logger("x").info("roles.synced", guild_id=big, role_ids=[big, 2], shard_id=0, flag_id=True, count=3)
    (obj,) = lines(stream)
    assert obj["guild_id"] == str(big)
    assert obj["role_ids"] == [str(big), "2"]
    assert obj["shard_id"] == "0"
    assert obj["flag_id"] is True
    assert obj["count"] == 3


# --- ring buffer -------------------------------------------------------------------------------------------


def _event(event: str, level: str = "info", guild_id: str | None = None, logger: str = "x") -> dict[str, object]:
    return {"event": event, "level": level, "logger": logger, "guild_id": guild_id, "ts": "2026-01-01T00:00:00.000Z"}


def test_each_guild_has_its_own_ring_and_anonymous_entries_reach_only_the_operators() -> None:
    ring = LogRing(5, guild_size=2, max_guilds=2)
    ring.append(_event("a1", guild_id="1"))
    for i in range(10):
        ring.append(_event(f"noise{i}", guild_id="2"))  # a busy guild wraps its own ring only
    with operator_only():
        ring.append(_event("anonymous", guild_id="1"))
    assert [e.event for e in ring.guild_entries("1")] == ["a1"]
    assert [e.event for e in ring.guild_entries("2")] == ["noise8", "noise9"]
    assert "anonymous" in [e.event for e in ring.entries(guild_id="1")]  # the operator ring has it
    assert [e.event for e in ring.guild_entries("2", after_seq=ring.guild_entries("2")[0].seq)] == ["noise9"]
    assert ring.guild_first_seq("1") == 1 and ring.guild_first_seq("9") == ring.last_seq + 1
    ring.append(_event("c1", guild_id="3"))  # a third guild: the least recently written ring ("1") goes
    assert ring.guild_entries("1") == [] and [e.event for e in ring.guild_entries("3")] == ["c1"]


def test_ring_wraps_and_keeps_sequence_numbers_increasing() -> None:
    ring = LogRing(3)
    assert ring.last_seq == 0
    assert ring.entries() == []
    for i in range(7):
        ring.append(_event(f"e{i}"))
    assert len(ring) == 3
    assert ring.last_seq == 7
    assert [e.seq for e in ring.entries()] == [5, 6, 7]
    assert [e.event for e in ring.entries()] == ["e4", "e5", "e6"]
    assert [e.seq for e in ring.entries(after_seq=5)] == [6, 7]
    assert [e.seq for e in ring.entries(after_seq=1)] == [5, 6, 7]  # evicted: the gap is visible to the client
    assert ring.entries(after_seq=7) == []
    ring.append(_event("e7"))
    assert [e.seq for e in ring.entries(after_seq=7)] == [8]


def test_ring_paging_limits() -> None:
    ring = LogRing(100)
    for i in range(10):
        ring.append(_event(f"e{i}"))
    # First call: the newest entries; follow-ups: forward from the last seen seq, without gaps.
    assert [e.seq for e in ring.entries(limit=3)] == [8, 9, 10]
    assert [e.seq for e in ring.entries(after_seq=2, limit=3)] == [3, 4, 5]
    assert ring.entries(limit=0) == []


def test_ring_filters_by_guild_level_and_logger() -> None:
    ring = LogRing(100)
    ring.append(_event("a", "info", "1", "synapse_async.pipeline"))
    ring.append(_event("b", "warning", "2", "hikari.gateway"))
    ring.append(_event("c", "error", "1", "hikari"))
    ring.append(_event("d", "info", None, "hikarix"))
    ring.append(_event("e", "critical", "1", "synapse_async.api"))
    assert [e.event for e in ring.entries(guild_id="1")] == ["a", "c", "e"]
    assert [e.event for e in ring.entries(min_level="warning")] == ["b", "c", "e"]
    assert [e.event for e in ring.entries(min_level="ERROR", guild_id="1")] == ["c", "e"]
    assert [e.event for e in ring.entries(logger="hikari")] == ["b", "c"]  # children, not "hikarix"
    with pytest.raises(ValueError, match="level"):
        ring.entries(min_level="loud")


def test_ring_capture_level_applies_from_then_on() -> None:
    ring = LogRing(100, capture_level="WARNING")
    ring.append(_event("info-before", "info"))
    ring.append(_event("warn-before", "warning"))
    ring.capture_level = logging.INFO
    ring.append(_event("info-after", "info"))
    ring.capture_level = logging.ERROR
    ring.append(_event("warn-late", "warning"))
    assert [e.event for e in ring.entries()] == ["warn-before", "info-after"]
    assert [e.seq for e in ring.entries()] == [1, 2]  # skipped entries take no sequence number
    with pytest.raises(ValueError, match="level"):
        ring.capture_level = 5  # hikari's TRACE would capture raw gateway payloads


def test_capture_level_change_reaches_the_running_pipeline(captured: tuple[io.StringIO, LogRing]) -> None:
    """Lowering the capture level records DEBUG in the ring while stderr stays at LOG_LEVEL, and vice versa."""
    stream, ring = captured
    log = get_logger("synapse_async.pipeline")
    log.debug("debug-1")
    ring.capture_level = logging.DEBUG
    log.debug("debug-2", guild_id=5)
    logging.getLogger("hikari.gateway").debug("debug-3")
    log.info("info-1")
    ring.capture_level = logging.WARNING
    log.info("info-2")
    log.debug("debug-4")

    assert [e.event for e in ring.entries()] == ["debug-2", "debug-3", "info-1"]
    assert [e.level for e in ring.entries()] == ["debug", "debug", "info"]
    assert ring.entries(guild_id="5")[0].event == "debug-2"
    assert [o["event"] for o in lines(stream)] == ["info-1", "info-2"]  # output level unchanged
    assert logging.getLogger().level == logging.INFO


def test_ring_entries_are_json_ready(captured: tuple[io.StringIO, LogRing]) -> None:
    _, ring = captured
    bind_context(request_id="r9", guild_id=77)
    get_logger("synapse_async.api").info("http.request", route="/api/x", status=200, obj=object(), tags={"a"})
    (entry,) = ring.entries()
    assert entry.guild_id == "77"
    assert entry.logger == "synapse_async.api"
    assert entry.level == "info"
    assert TS_RE.match(entry.ts)
    assert entry.fields["request_id"] == "r9"
    assert entry.fields["status"] == 200
    doc = json.loads(json.dumps(entry.as_dict()))  # no TypeError: everything was copied as JSON values
    assert doc["seq"] == 1
    assert doc["fields"]["tags"] == ["a"]


# --- UTF-8 regardless of locale ----------------------------------------------------------------------------


def test_utf8_stream_reconfigures_an_ascii_stream() -> None:
    raw = io.BytesIO()
    ascii_stream = io.TextIOWrapper(raw, encoding="ascii")
    stream = utf8_stream(ascii_stream)
    stream.write(EMOJI + "\udcff")  # a lone surrogate must not raise either
    stream.flush()
    assert raw.getvalue() == EMOJI.encode("utf-8") + b"\\udcff"


def test_stderr_is_utf8_under_the_c_locale() -> None:
    """`LC_ALL=C` with UTF-8 mode off gives an ASCII stderr; the logs must still be UTF-8 and never crash."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHON")) and k != "LANG"}
    env.update({"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"})
    # ASCII-only source: under the C locale a non-ASCII command line would itself be undecodable.
    code = (
        "import sys, logging\n"
        "print(sys.stderr.encoding)\n"
        "from synapse_async.obs import configure_logging, get_logger\n"
        "configure_logging()\n"
        "get_logger('synapse_async.bot').info('member.joined', display_name='Ada \\U0001f469\\u200d\\U0001f4bb')\n"
        "logging.getLogger('hikari.gateway').warning('caf\\xe9 \\U0001f469\\u200d\\U0001f4bb')\n"
        "get_logger('x').info('odd', detail='\\udcff')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    assert proc.stdout.decode().strip().lower() in ("ascii", "ansi_x3.4-1968")  # the locale really is ASCII
    text = proc.stderr.decode("utf-8")  # strict: raises if anything is not valid UTF-8
    assert "UnicodeEncodeError" not in text
    assert EMOJI.encode("utf-8") in proc.stderr  # real UTF-8, not a backslash escape
    assert "café".encode() in proc.stderr
    joined, gateway, odd = (json.loads(line) for line in text.splitlines())
    assert joined["display_name"] == "Ada " + EMOJI
    assert gateway["event"] == "café " + EMOJI
    assert b"\\udcff" in proc.stderr  # a lone surrogate is written as an escape, so the bytes stay UTF-8
    assert odd["detail"] == "\udcff"  # ... a JSON escape, which decodes back to the original value


def test_console_format_escapes_controls_and_bidi_in_every_key() -> None:
    """Not only the user-text keys: a route, an error text or a library message can carry ESC, U+2028 or bidi."""
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="console", stream=stream)
    hostile = "a\x1b[2J\x1b]0;pwned\x07b\u2028c\u202ed\x85e"
    try:
        get_logger("synapse_async.http").info(f"evt{hostile}", route=hostile, error=hostile, **{f"k{hostile}": 1})
        logging.getLogger("aiohttp.access").warning("library said %s", hostile)
    finally:
        reset_logging()
    text = stream.getvalue()
    assert text.count("\n") == 2, text
    for raw in ("\x1b", "\x07", "\u2028", "\u202e", "\x85"):
        assert raw not in text
    assert text.count("a\\u001b[2J\\u001b]0;pwned\\u0007b\\u2028c\\u202ed\\u0085e") >= 4


def test_query_string_passwords_are_masked_in_free_text() -> None:
    line = scrub_secrets("connect to postgresql://app@db.internal/synapse?sslmode=require&password=hunter2 failed")
    assert "hunter2" not in line and "password=***" in line and "sslmode=require" in line
