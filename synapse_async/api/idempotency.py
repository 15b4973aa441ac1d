"""`Idempotency-Key` on writes (SPEC §18): the first response is stored 24 h; a retry replays it.

The key is scoped to the principal (an anonymous caller has none to scope to, so the header is only honoured on
authenticated writes). The request fingerprint is SHA-256 over method, path and the raw body: the same key with
another body is a client bug and gets 409 rather than a response to a request it did not send.

Responses are stored after the handler returns (the table holds only complete responses, no "in progress" rows):
two simultaneous first attempts with one key may both run, and the first to store wins. Server faults (5xx) and
429 are not stored, so a retry after an outage or a refusal really retries. Expired rows are ignored on lookup
and replaced on store; the pruner deletes them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.api.errors import ApiError, FieldProblem

HEADER: Final = "Idempotency-Key"
KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
TTL_SQL: Final = "interval '24 hours'"

_LOOKUP = text(
    f"""
    SELECT request_hash, status, response FROM idempotency_keys
     WHERE principal = :p AND key = :k AND created_at > now() - {TTL_SQL}
    """
).columns(response=JSONB)
_STORE = text(
    f"""
    INSERT INTO idempotency_keys (principal, key, request_hash, status, response)
    VALUES (:p, :k, :h, :s, :r)
    ON CONFLICT (principal, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, status = EXCLUDED.status, response = EXCLUDED.response,
           created_at = now()
     WHERE idempotency_keys.created_at <= now() - {TTL_SQL}
    """
).bindparams(bindparam("r", type_=JSONB))


def parse_key(value: str | None) -> str | None:
    """The header's key, None when absent, else 400 naming the header."""
    if value is None:
        return None
    if not KEY_RE.fullmatch(value):
        raise ApiError.validation([FieldProblem(HEADER, "invalid_format", "8–64 characters of A-Z a-z 0-9 _ -")])
    return value


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: Any


def storable(status: int) -> bool:
    return status < 500 and status != 429


async def lookup(conn: AsyncConnection, principal: str, key: str, request_hash: str) -> Stored | None:
    """The stored response for a retry, None for a first attempt, 409 for the same key with another request."""
    row = (await conn.execute(_LOOKUP, {"p": principal, "k": key})).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise ApiError.conflict("key_reused", f"This {HEADER} was already used for a different request.")
    return Stored(row.status, row.response)


async def store(conn: AsyncConnection, principal: str, key: str, request_hash: str, status: int, body: Any) -> None:
    await conn.execute(_STORE, {"p": principal, "k": key, "h": request_hash, "s": status, "r": body})
    await conn.commit()
