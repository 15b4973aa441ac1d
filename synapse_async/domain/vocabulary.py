"""The product's closed vocabularies, defined once (SPEC §2, §6, §12.2, §15.1).

The schema's CHECK constraints (models), the settings registry (`lake.source.<type>` keys), trigger validation
and the pipeline all read these tuples, so adding a lake event type or a stat happens in one place. The frozen
Alembic revision keeps its own copy on purpose: a revision must not change when the code does.
"""

from __future__ import annotations

from typing import Final

REWARD_KINDS: Final[tuple[str, ...]] = ("message", "reaction_given", "reaction_received", "thread_create", "voice_tick")
LAKE_EVENT_TYPES: Final[tuple[str, ...]] = (
    "message_create",
    "message_delete",
    "reaction_add",
    "reaction_remove",
    "thread_create",
    "voice_join",
    "voice_leave",
    "voice_move",
    "member_join",
    "member_leave",
)
TRIGGER_TYPES: Final[tuple[str, ...]] = (
    "stat_threshold",
    "xp_milestone",
    "level_reached",
    "star_threshold",
    "event_count",
    "manual",
)
STAT_NAMES: Final[tuple[str, ...]] = (
    "messages_sent",
    "reactions_given",
    "reactions_received",
    "threads_created",
    "voice_minutes",
)
