"""One transaction's scratch state for the ledger engine, as named values rather than positional tuples.

A `Tx` lives exactly as long as one database transaction: the member rows it touched stay locked until COMMIT, so
what it remembers (levels, preferences, which event already announced a level-up) is valid for that long only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from synapse_async.ledger.effects import Effects


class NeedsSingles(Exception):
    """A batch would earn an achievement; replay it one event per transaction (exactly like one-by-one)."""


class MemberLevel(NamedTuple):
    """A member's level state as this transaction has left it (the row stays locked until commit)."""

    level: int
    peak: int


class Preferences(NamedTuple):
    """A member's announcement preferences (SPEC §14); no stored row means all on."""

    level_up: bool = True
    achievements: bool = True
    awards: bool = True


class AnnounceSlot(NamedTuple):
    """One level-up announcement per (guild, member, event) (SPEC §14)."""

    guild_id: int
    user_id: int
    event_key: str


@dataclass(frozen=True, slots=True)
class Cause:
    """Where an XP change comes from: its guild, event time (journal, seasons) and key (level/achievement keys)."""

    guild_id: int
    occurred_at: datetime
    key: str
    season_id: int | None
    announce_channel: int | None
    event: str | None = None  # the key of the event/admin action this change stems from (None: `key` itself)

    @property
    def event_key(self) -> str:
        """Level-ups are announced once per event (SPEC §14), however many changes (rewards) it caused."""
        return self.event if self.event is not None else self.key


@dataclass(frozen=True, slots=True)
class Earning:
    """What `LevelEngine.earn` wrote: the achievement journal row, whether the badge row was new, and the member
    row after the rewards (None when the template pays nothing)."""

    journal_id: int
    recorded: bool
    row: Mapping[str, Any] | None


class Tx:
    """Per-transaction scratch state: tracked levels, preference cache, announced level-ups and the effects.

    Every writer opens one on the connection of its own transaction: the pipeline per batch (`singles=False` lets
    a batch detect an achievement and ask for a one-by-one replay), services and jobs with `singles=True`, so
    achievements apply in place.
    """

    __slots__ = ("announced", "conn", "effects", "levels", "prefs", "singles")

    def __init__(self, conn: asyncpg.Connection, singles: bool) -> None:
        self.conn = conn
        self.singles = singles
        self.effects = Effects()
        self.levels: dict[tuple[int, int], MemberLevel] = {}
        self.prefs: dict[tuple[int, int], Preferences] = {}
        self.announced: dict[AnnounceSlot, int] = {}  # -> index in effects.level_ups
