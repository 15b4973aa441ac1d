"""`Idempotency-Key` on writes (SPEC §18): reserved before the handler, the first response stored 24 h.

The key is scoped to the principal and the route (method and path; an anonymous caller has no principal to scope
to, so the header is only honoured on authenticated writes). The request fingerprint is SHA-256 over method, path
and the raw body: the same key with another body is a client bug and gets 409 rather than a response to a request
it did not send.

The key is RESERVED in the database before the handler runs (a row with `status` NULL), so all processes agree
that exactly one of any number of concurrent identical requests executes. The others wait for its stored response
(polling the row, at most `WAIT_SECONDS`) and replay it, or get 409 `conflict` with `details.reason =
"in_progress"`. A reservation is released (the row deleted) when the first attempt ends in a server fault (5xx),
a refusal (429) or never finishes (cancelled, crashed): a retry then really retries. A reservation older than
`STALE_RESERVATION_SQL` belongs to a process that died mid-request and may be taken over. Expired rows are
ignored on lookup and replaced on reservation; the pruner deletes them.

The handler's own effects are keyed by the same header where money moves (§7.5: `award:<key>`, `grant:<key>`,
`revoke:<key>`), so even a retry after the 24 h window replays the journal row instead of paying twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from synapse_async.api.errors import ApiError, FieldProblem

HEADER: Final = "Idempotency-Key"
KEY_RE: Final = re.compile(r"[A-Za-z0-9_-]{8,64}")
TTL_SQL: Final = "interval '24 hours'"
STALE_RESERVATION_SQL: Final = "interval '5 minutes'"
WAIT_SECONDS: Final = 10.0
"""How long a concurrent duplicate waits for the first attempt's response before answering 409 (§18)."""
POLL_SECONDS: Final = 0.05

_RESERVE = text(
    f"""
    INSERT INTO idempotency_keys (principal, route, key, request_hash, status, response)
    VALUES (:p, :r, :k, :h, NULL, NULL)
    ON CONFLICT (principal, route, key) DO UPDATE
       SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL, created_at = now()
     WHERE idempotency_keys.created_at <= now() - {TTL_SQL}
        OR (idempotency_keys.status IS NULL AND idempotency_keys.created_at <= now() - {STALE_RESERVATION_SQL})
    RETURNING true
    """
)
_LOOKUP = text(
    f"""
    SELECT request_hash, status, response FROM idempotency_keys
     WHERE principal = :p AND route = :r AND key = :k AND created_at > now() - {TTL_SQL}
    """
).columns(response=JSONB)
_STORE = text(
    """
    UPDATE idempotency_keys SET status = :s, response = :b
     WHERE principal = :p AND route = :r AND key = :k AND request_hash = :h AND status IS NULL
    """
).bindparams(bindparam("b", type_=JSONB))
_RELEASE = text(
    "DELETE FROM idempotency_keys WHERE principal = :p AND route = :r AND key = :k AND request_hash = :h"
    " AND status IS NULL"
)


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


@dataclass(frozen=True, slots=True)
class Slot:
    """One write's key: who (principal), where (route = method and path), which key, and the request's hash."""

    principal: str
    route: str
    key: str
    request_hash: str

    def params(self) -> dict[str, str]:
        return {"p": self.principal, "r": self.route, "k": self.key, "h": self.request_hash}


def storable(status: int) -> bool:
    return status < 500 and status != 429


Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection]]


def _reused() -> ApiError:
    return ApiError.conflict("idempotency_key_reused", f"This {HEADER} was already used for a different request.")


async def claim(connect: Connect, slot: Slot) -> Stored | None:
    """Reserve the key (None: this request runs the handler) or return the first attempt's stored response.

    A concurrent first attempt still running is waited for, up to `WAIT_SECONDS`, then 409 `in_progress`; one
    that is released meanwhile (it failed) lets this request reserve the key and run. The same key with another
    request is 409 at once."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        busy: ApiError | None = None
        row = None
        try:
            async with connect() as conn:
                reserved = (await conn.execute(_RESERVE, slot.params())).first() is not None
                row = None if reserved else (await conn.execute(_LOOKUP, slot.params())).first()
                await conn.commit()
        except ApiError as exc:
            if exc.status != 503:  # the HTTP database gate is full: that is "wait", like a running first attempt
                raise
            busy, reserved = exc, False
        if reserved:
            return None
        if busy is not None and time.monotonic() >= deadline:
            raise busy
        if row is not None:
            if row.request_hash != slot.request_hash:
                raise _reused()
            if row.status is not None:
                return Stored(int(row.status), row.response)
        if time.monotonic() >= deadline:
            raise ApiError.conflict("in_progress", f"A request with this {HEADER} is still in progress; retry shortly.")
        await asyncio.sleep(POLL_SECONDS)


async def store(connect: Connect, slot: Slot, status: int, body: Any) -> None:
    """Complete the reservation with the response that every retry within 24 h will get."""
    async with connect() as conn:
        await conn.execute(_STORE, {**slot.params(), "s": status, "b": body})
        await conn.commit()


async def release(connect: Connect, slot: Slot) -> None:
    """Give the key up: the first attempt did not produce a response worth replaying."""
    async with connect() as conn:
        await conn.execute(_RELEASE, slot.params())
        await conn.commit()
