"""The uniform error body of SPEC §18: `{"error": {"code", "message", "details"}}`.

Handlers raise `ApiError`; the error middleware renders it. Keeping one exception type means no handler builds
error JSON by hand and every 4xx looks the same to clients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from synapse_async.domain.snowflakes import InvalidSnowflake, to_snowflake


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    problem: str
    message: str | None = None

    def as_json(self) -> dict[str, str]:
        out = {"field": self.field, "problem": self.problem}
        if self.message:
            out["message"] = self.message
        return out


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    @classmethod
    def validation(cls, problems: list[FieldProblem], message: str = "The request is invalid.") -> ApiError:
        return cls(400, "validation_error", message, [p.as_json() for p in problems])

    @classmethod
    def conflict(cls, reason: str, message: str, **details: Any) -> ApiError:
        """SPEC §18: every 409 has code `conflict`; `details.reason` names the clash so clients can switch on it."""
        return cls(409, "conflict", message, {"reason": reason, **details})

    @classmethod
    def not_found(cls, message: str = "Not found.") -> ApiError:
        return cls(404, "not_found", message)

    @classmethod
    def unavailable(cls, message: str = "The service is temporarily unavailable; try again shortly.") -> ApiError:
        return cls(503, "unavailable", message)


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def parse_snowflake(value: object, field: str) -> int:
    """A snowflake from a path, query or body value (`domain.snowflakes.to_snowflake`), else 400 naming the field."""
    try:
        return to_snowflake(value)
    except InvalidSnowflake as exc:
        raise ApiError.validation([FieldProblem(field, exc.problem, "must be a Discord id (digits)")]) from None
