"""What `/health` may say about an error: its class and a short code, never its text (SPEC §24.1, §27 item 9).

`/health` is unauthenticated. Exception messages carry host names, user names, SQL fragments and sometimes
values, so the probe shows only `{"class": "ConnectionRefusedError", "code": "ECONNREFUSED"}`; the full text goes
to the log line written when the error happened, where operators look for it.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

from synapse_async.db.faults import is_transient


def _sqlstate(exc: BaseException) -> str | None:
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str) and state.isascii() and state.isalnum() and len(state) == 5:
            return state
    return None


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    """An error reduced to what is safe to show anyone: the exception class name and a short code."""

    error_class: str
    code: str

    @classmethod
    def of(cls, exc: BaseException) -> ErrorSummary:
        """Code: the SQLSTATE, else the errno name, else `timeout`, `transient` (retried by itself) or `internal`."""
        code: str | None = _sqlstate(exc)
        if code is None and isinstance(exc, OSError) and exc.errno is not None:
            code = errno.errorcode.get(exc.errno, f"errno:{exc.errno}")
        if code is None and isinstance(exc, TimeoutError):
            code = "timeout"
        if code is None:
            code = "transient" if is_transient(exc) else "internal"
        return cls(type(exc).__name__, code)

    def as_json(self) -> dict[str, Any]:
        return {"class": self.error_class, "code": self.code}


def summary_json(summary: ErrorSummary | None) -> dict[str, Any] | None:
    return None if summary is None else summary.as_json()
