"""The uniform error body of SPEC §18: `{"error": {"code", "message", "details"}}`.

Handlers raise `ApiError`; the error middleware renders it. Keeping one exception type means no handler builds
error JSON by hand and every 4xx looks the same to clients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web


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
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    @classmethod
    def validation(cls, problems: list[FieldProblem], message: str = "The request is invalid.") -> ApiError:
        return cls(400, "validation_error", message, [p.as_json() for p in problems])

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


def parse_snowflake(value: str, field: str) -> int:
    """Path/query snowflake: digit string within signed 64 bits, else 400 naming the field."""
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise ApiError.validation([FieldProblem(field, "invalid_type", "must be a Discord id (digits)")])
    return int(value)
