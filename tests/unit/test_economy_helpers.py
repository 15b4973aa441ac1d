"""The economy's pure helpers: audit snapshots, request keys and read-back results (no I/O)."""

from __future__ import annotations

import json

import pytest

from synapse_async.ledger import Effects
from synapse_async.services import economy


def test_audit_snapshots_spell_each_part_once() -> None:
    assert economy._balance_snapshot(10, 5, 2) == {"xp": 10, "gold": 5, "level": 2}
    assert economy._applied_snapshot(7, -3, 0) == {"journal_id": 7, "xp_applied": -3, "gold_applied": 0}
    assert economy._badge_snapshot(42, 9, source="grant") == {"user_id": "42", "template_id": 9, "source": "grant"}


def test_audit_target_is_the_member_or_its_badge() -> None:
    assert economy._audit_target(42, None) == ("member", "42")
    assert economy._audit_target(42, 9) == ("member_achievement", "42:9")


def test_request_key_validates_before_it_names_the_key() -> None:
    assert economy._request_key("grant", "abc", None, reason_required=False) == "grant:abc"
    with pytest.raises(ValueError, match="reason is required"):
        economy._request_key("revoke", "abc", None, reason_required=True)
    with pytest.raises(ValueError, match="request_id"):
        economy._request_key("award", "", "why", reason_required=True)


def test_read_back_rows_become_replayed_results() -> None:
    row = {
        "journal_id": 3,
        "xp_delta": -4,
        "gold_delta": 0,
        "xp": 11,
        "gold": 2,
        "level": 1,
        "details": json.dumps({"template_id": 8}),
    }
    award = economy._replayed_award(row)
    assert award == economy.AwardResult(3, -4, 0, 11, 2, 1, Effects(), replayed=True)
    badge = economy._replayed_badge(row)
    assert (badge.journal_id, badge.template_id, badge.xp_applied, badge.xp, badge.replayed) == (3, 8, -4, 11, True)
    assert badge.effects == Effects()
