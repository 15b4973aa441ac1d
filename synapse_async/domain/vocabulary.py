"""The product's closed vocabularies, defined once (SPEC §2, §6, §12.2, §15.1).

Each vocabulary is one `Literal` type plus the tuple of its values derived from it (`get_args`), so the type
checker and the runtime checks can never disagree. The schema's CHECK constraints (models), the settings registry
(`lake.source.<type>` keys), trigger validation, the reward formula and the pipeline all read these, so adding a
lake event type, a reward kind or a stat happens in one place. The frozen Alembic revision keeps its own copy on
purpose: a revision must not change when the code does.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

RewardKind = Literal["message", "reaction_given", "reaction_received", "thread_create", "voice_tick"]
REWARD_KINDS: Final[tuple[RewardKind, ...]] = get_args(RewardKind)

ZeroReason = Literal[
    "cooldown", "too_short", "no_xp", "self", "bot_target", "unknown_target", "pair_cap", "reactor_cap", "hourly_cap"
]
ZERO_REASONS: Final[tuple[ZeroReason, ...]] = get_args(ZeroReason)

LakeEventType = Literal[
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
]
LAKE_EVENT_TYPES: Final[tuple[LakeEventType, ...]] = get_args(LakeEventType)
TriggerType = Literal["stat_threshold", "xp_milestone", "level_reached", "star_threshold", "event_count", "manual"]
TRIGGER_TYPES: Final[tuple[TriggerType, ...]] = get_args(TriggerType)
StatName = Literal["messages_sent", "reactions_given", "reactions_received", "threads_created", "voice_minutes"]
STAT_NAMES: Final[tuple[StatName, ...]] = get_args(StatName)
JobKind = Literal["retention", "reconciliation", "backfill", "import", "level_role_sync", "relevel"]
JOB_KINDS: Final[tuple[JobKind, ...]] = get_args(JobKind)
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
