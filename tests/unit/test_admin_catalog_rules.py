"""Pure rules behind the admin catalogue routes: template problems, list warnings, LIKE escaping, body times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from synapse_async.api.admin.seasons import SeasonStartBody
from synapse_async.services.catalogue import NewTemplate, template_problems, template_warnings
from synapse_async.services.member_directory import like_pattern


def test_series_url_and_reference_problems() -> None:
    new = NewTemplate(
        name="Tier", trigger_type="manual", series_id=7, badge_image_url="http://example.com/a.png", rarity_id=2
    )
    problems = template_problems(new, category_ids=(), rarity_ids={2}, series_ids={8})
    assert problems == [
        ("series", "unknown in this server"),
        ("series_order", "required exactly when series_id is set"),
        ("badge_image_url", "must be an https URL of at most 500 characters"),
    ]
    ok = NewTemplate(name="Tier", trigger_type="manual", series_id=8, series_order=1, badge_image_url="https://x.io/b")
    assert template_problems(ok, category_ids=(), rarity_ids=(), series_ids={8}) == []
    orphan = NewTemplate(name="Tier", trigger_type="manual", series_order=0)
    assert template_problems(orphan, category_ids=(), rarity_ids=()) == [
        ("series_order", "required exactly when series_id is set")
    ]


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "active": True,
        "max_earners": None,
        "earned_count": 0,
        "is_hidden": False,
        "trigger_type": "star_threshold",
        "trigger_config": {"value": 5, "scope": "lifetime"},
    }
    return {**row, **over}


def test_template_warnings_name_each_switch() -> None:
    assert template_warnings(_row(), season_active=False) == []
    season = _row(trigger_config={"value": 5, "scope": "season"})
    assert template_warnings(season, season_active=True) == []
    assert [w.split(":")[0] for w in template_warnings(season, season_active=False)] == ["season scope"]
    everything = _row(active=False, max_earners=2, earned_count=2, is_hidden=True, trigger_type="manual")
    assert [w.split(":")[0] for w in template_warnings(everything, season_active=True)] == [
        "inactive",
        "full",
        "hidden",
        "manual",
    ]


def test_like_pattern_takes_wildcards_literally() -> None:
    assert like_pattern("50%") == "%50\\%%"
    assert like_pattern("a_b") == "%a\\_b%"
    assert like_pattern("back\\slash") == "%back\\\\slash%"


def test_body_times_need_an_offset_and_are_held_in_utc() -> None:
    body = SeasonStartBody.model_validate_json('{"name": "S", "ends_at": "2999-01-01T02:00:00+02:00"}', strict=True)
    assert body.ends_at == datetime(2999, 1, 1, tzinfo=UTC)
    for bad in ("2999-01-01T00:00:00", "0.5", "9999-12-31T23:59:59-01:00", "2999-13-01T00:00:00Z"):
        with pytest.raises(ValidationError) as caught:
            SeasonStartBody.model_validate_json(f'{{"name": "S", "ends_at": "{bad}"}}', strict=True)
        assert caught.value.errors()[0]["loc"] == ("ends_at",), bad
