"""Retrying database work through transient failures (SPEC §8.2): backoff 0.5 s doubling to a cap.

Used by adapters whose work must not be lost to a short outage (guild sync after READY, later the pipeline).
Permanent errors are raised at once; transient ones are retried `attempts` times, then raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from synapse_async.db.engine import is_transient
from synapse_async.obs.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)


async def with_db_retry(
    op: Callable[[], Awaitable[T]], *, what: str, attempts: int = 6, base_delay: float = 0.5, max_delay: float = 30.0
) -> T:
    delay = base_delay
    for attempt in range(1, attempts + 1):
        try:
            return await op()
        except Exception as exc:
            if not is_transient(exc) or attempt == attempts:
                raise
            log.warning("db_retry", what=what, attempt=attempt, delay_s=delay, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable: the loop returns or raises")
