"""Pure helpers of the console's operations pages (seasons, import / export, event lake, jobs): no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from synapse_async.api.admin.lake import DailyCount
from synapse_async.api.admin.seasons import SeasonModel
from synapse_async.services import seasons as season_rules
from synapse_async.web.console import jobs, lake, seasons, transfer

T0 = datetime(2027, 1, 31, 18, 5, 42, tzinfo=UTC)


def _season(sid: int, status: str) -> SeasonModel:
    ended = None if status == "active" else T0
    return SeasonModel(id=sid, name=f"S{sid}", status=status, starts_at=T0, ends_at=T0, ended_at=ended)


# --- jobs -----------------------------------------------------------------------------------------------------


def test_progress_is_read_defensively_and_clamped() -> None:
    assert jobs.progress_of({"done": 3, "total": 4}).percent == 75
    assert jobs.progress_of({"done": 9, "total": 4}).percent == 100
    unknown = jobs.progress_of({"done": 3})
    assert (unknown.known, unknown.percent) == (False, 0)
    odd = jobs.progress_of({"done": "3", "total": True})
    assert (odd.done, odd.total) == (0, 0)


def test_only_queued_and_running_jobs_can_be_cancelled() -> None:
    assert [s for s in ("queued", "running", "succeeded", "failed", "cancelled") if jobs.cancellable(s)] == [
        "queued",
        "running",
    ]


def test_job_filters_keep_known_values_only_and_the_pager_keeps_them() -> None:
    assert jobs.job_filters({"kind": "import", "status": "queued", "x": "y"}) == {"kind": "import", "status": "queued"}
    assert jobs.job_filters({"kind": "bogus", "status": ""}) == {}
    assert jobs.base_qs({"kind": "import", "status": "queued"}) == "kind=import&status=queued&"
    assert jobs.base_qs({}) == ""


def test_kind_labels_read_as_words() -> None:
    assert jobs.kind_label("level_role_sync") == "Level-role sync"
    assert jobs.kind_label("some_new_kind") == "Some new kind"


def test_a_result_is_arranged_for_reading_without_changing_values() -> None:
    result = {
        "sample": [{"xp_after": 2, "user_id": "1", "xp_before": 1, "gold_after": 4, "gold_before": 3}],
        "xp_delta": 1,
        "mode": "add",
        "zeta": 0,
        "level_changes": {"items": [{"to": 3, "from": 1, "user_id": "1"}], "count": 1},
    }
    out = jobs.arranged(result)
    assert list(out) == ["mode", "xp_delta", "zeta", "level_changes", "sample"]
    assert list(out["sample"][0]) == ["user_id", "gold_before", "gold_after", "xp_before", "xp_after"]
    assert list(out["level_changes"]["items"][0]) == ["user_id", "from", "to"]
    assert out["sample"][0]["xp_after"] == 2 and out["level_changes"]["count"] == 1
    rows = jobs.arranged([{"a": 1}, {"b": 2}])
    assert rows == [{"a": 1, "b": None}, {"a": None, "b": 2}]  # every row has every column


# --- seasons --------------------------------------------------------------------------------------------------


def test_seasons_split_into_the_active_one_and_the_archive() -> None:
    active, archived = seasons.split([_season(3, "active"), _season(2, "ended"), _season(1, "ended")])
    assert active is not None and active.id == 3
    assert [s.id for s in archived] == [2, 1]
    assert seasons.split([_season(1, "ended")])[0] is None


def test_times_for_datetime_inputs_are_utc_to_the_minute() -> None:
    assert seasons.utc_input(T0) == "2027-01-31T18:05"
    paris = T0.astimezone(timezone(timedelta(hours=1)))
    assert seasons.utc_input(paris) == "2027-01-31T18:05"
    assert seasons.utc_input(None) is None


def test_the_start_form_carries_the_contract_bounds() -> None:
    fields = {f.name: f for f in seasons.start_fields(42)}
    assert fields["name"].max_length == season_rules.MAX_NAME and fields["name"].required
    assert (fields["days"].minimum, fields["days"].maximum) == (1, season_rules.MAX_DAYS)
    assert "42 days" in fields["days"].description
    assert fields["ends_at"].widget == "datetime" and not fields["ends_at"].required
    end = seasons.end_field(_season(3, "active"))
    assert end.shown_value == "2027-01-31T18:05" and "ends_at" in end.error_keys


# --- event lake -----------------------------------------------------------------------------------------------


def test_the_chart_span_is_one_of_the_offered_ones() -> None:
    assert lake.span_of({"days": "30"}) == "30"
    assert lake.span_of({"days": "31"}) == "7"
    assert lake.span_of({}) == "7"


def test_daily_counts_fill_missing_days_with_zero() -> None:
    days = [date(2027, 1, 1), date(2027, 1, 2), date(2027, 1, 3)]
    chart, table = lake.daily_chart([DailyCount(day=date(2027, 1, 2), count=5)], days)
    assert table == [(days[0], 0), (days[1], 5), (days[2], 0)]
    assert [b.value for b in chart.bars] == [5] and not chart.empty
    assert lake.daily_chart([], days)[0].empty


def test_sizes_read_in_binary_units() -> None:
    assert [lake.size_text(n) for n in (0, 812, 4300, 1536 * 1024, 3 * 1024**3, 5 * 1024**4)] == [
        "0 B",
        "812 B",
        "4.2 KB",
        "1.5 MB",
        "3 GB",
        "5120 GB",
    ]


def test_counter_filters_and_their_problems() -> None:
    assert lake.counter_filters({"user_id": " 12 ", "period": "", "page": "2"}) == {"user_id": "12"}
    assert lake.counters_qs({"user_id": "12"}, "30") == "days=30&user_id=12&"
    details = [
        {"field": "query.period", "problem": "invalid_value", "message": "bad period"},
        {"field": "query.user_id", "problem": "invalid_value", "message": "not an id"},
    ]
    assert lake.field_problems(details) == {"period": "bad period", "user_id": "not an id"}
    assert lake.field_problems({"reason": "x"}) == {}


# --- import / export ------------------------------------------------------------------------------------------


def test_the_export_file_is_named_after_the_guild_and_day() -> None:
    assert transfer.export_name(7, "2027-01-31") == "synapse-members-7-2027-01-31.json"
    assert {m.value for m in transfer.MODES} == {"add", "replace"}  # the import route's `mode` values
    assert {m.value for m in transfer.LEVELS} == {"", "keep", "recompute"}
