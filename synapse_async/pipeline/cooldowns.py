"""The message cooldown cache (SPEC §9.3): last paid message per (guild, member[, channel]), in memory only.

Updated only after COMMIT (`Processor.committed`); inside a transaction the processor reads it through the
transaction's provisional overlay (`Effects.cooldowns`), so a batch decides exactly like one-by-one processing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from cachetools import LRUCache

from synapse_async.ledger import CooldownKey


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two optional times (the cooldown overlay keeps the latest paid time, like the cache)."""
    if a is None:
        return b
    return a if b is None or a >= b else b


class CooldownCache:
    """Bounded (`COOLDOWN_CACHE_MAX`) last-paid-message times; updated only after commit (SPEC §9.3)."""

    def __init__(self, maxsize: int) -> None:
        self._entries: LRUCache[CooldownKey, datetime] = LRUCache(maxsize=maxsize)

    def get(self, key: CooldownKey) -> datetime | None:
        return self._entries.get(key)

    def apply(self, updates: Mapping[CooldownKey, datetime]) -> None:
        for key, at in updates.items():
            current = self._entries.get(key)
            if current is None or at > current:
                self._entries[key] = at

    def __len__(self) -> int:
        return len(self._entries)
