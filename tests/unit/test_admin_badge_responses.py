"""The admin API's award/grant/revoke response builders share one field mapping (no I/O)."""

from __future__ import annotations

from synapse_async.api.admin import achievements, awards, common
from synapse_async.ledger import Effects
from synapse_async.services.economy import AwardResult, BadgeResult


def test_award_and_badge_responses_carry_the_applied_fields() -> None:
    award = AwardResult(5, -2, 3, 40, 7, 2, Effects())
    assert awards.AwardResultModel(**common.applied(award)).model_dump() == {
        "journal_id": 5,
        "xp_applied": -2,
        "gold_applied": 3,
        "xp": 40,
        "gold": 7,
        "level": 2,
    }
    badge = BadgeResult(6, 10, 0, 50, 4, 3, Effects(), template_id=12)
    dumped = achievements._badge(badge).model_dump()
    assert list(dumped) == ["journal_id", "achievement_id", "xp_applied", "gold_applied", "xp", "gold", "level"]
    assert dumped == {
        "journal_id": 6,
        "achievement_id": 12,
        "xp_applied": 10,
        "gold_applied": 0,
        "xp": 50,
        "gold": 4,
        "level": 3,
    }
