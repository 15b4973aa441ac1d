"""SPEC §22's audit actions are a closed set: an audit row with another name cannot be built."""

from __future__ import annotations

import pytest

from synapse_async.services.audit import ACTIONS, AuditEntry

# SPEC §22, written out: `x.*` expands to the verbs the section gives for it.
SPEC_22 = {
    "settings.update", "settings.reset",
    "channel_default.upsert", "channel_default.delete", "override.upsert", "override.delete",
    "role_multiplier.upsert", "role_multiplier.delete", "no_xp.upsert", "no_xp.delete",
    "level_role.upsert", "level_role.delete",
    "achievement.create", "achievement.update", "achievement.delete",
    "category.create", "category.update", "category.delete",
    "rarity.create", "rarity.update", "rarity.delete",
    "series.create", "series.update", "series.delete",
    "award.create", "achievement.grant", "achievement.revoke",
    "season.start", "season.end", "season.update", "season.auto_end", "season.auto_start",
    "data_sources.update", "job.start", "job.cancel", "members.export", "members.import",
    "auth.login", "auth.logout", "token.mint", "logs.level",
}  # fmt: skip


def test_the_actions_are_exactly_those_of_spec_22() -> None:
    assert ACTIONS == SPEC_22


@pytest.mark.parametrize(
    "action", ["lake.retention", "level_roles.sync", "channel_type_default.put", "no_xp_target.put"]
)
def test_an_audit_row_with_another_action_cannot_be_built(action: str) -> None:
    with pytest.raises(ValueError, match="SPEC §22"):
        AuditEntry(guild_id=1, action=action, target_type="x")
    assert AuditEntry(guild_id=1, action="job.start", target_type="job").action == "job.start"
