"""Observability: structured logging, log sanitising and the live-log ring buffer (SPEC §24.3)."""

from synapse_async.obs.logging import (
    bind_context,
    bound_context,
    clear_context,
    configure_logging,
    current_context,
    get_logger,
    reset_logging,
    unbind_context,
    utf8_stream,
)
from synapse_async.obs.ring import LogEntry, LogRing, level_name, parse_level
from synapse_async.obs.sanitize import safe_text

__all__ = [
    "LogEntry",
    "LogRing",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "current_context",
    "get_logger",
    "level_name",
    "parse_level",
    "reset_logging",
    "safe_text",
    "unbind_context",
    "utf8_stream",
]
