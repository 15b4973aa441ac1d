"""Import document detection and row validation (SPEC §20.1), and the per-member plan: pure, no I/O."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_async.imports.formats import (
    MAX_ENTRIES,
    DocumentTooLarge,
    ImportEntry,
    ImportFormatError,
    parse_document,
)
from synapse_async.imports.plan import CHANGE_SAMPLE_MAX, MemberState, PlanTotals, plan_member, role_change
from synapse_async.rewards.leveling import curve_for

U1, U2, U3 = 300000000000000001, 300000000000000002, 300000000000000003
LIMIT = 1 << 20


def parse(document: object | str) -> tuple[str, list[tuple[int, int | None, int | None]], list[tuple[int, str]]]:
    raw = document if isinstance(document, str) else json.dumps(document)
    parsed = parse_document(raw.encode(), max_bytes=LIMIT)
    return (
        parsed.format,
        [(e.user_id, e.xp, e.gold) for e in parsed.entries],
        [(r.index, r.reason) for r in parsed.invalid],
    )


@pytest.mark.parametrize(
    ("document", "fmt"),
    [
        ([{"id": str(U1), "xp": 10}, {"user_id": U2, "xp": 20, "gold": 5}], "array"),
        ({"players": [{"id": str(U1), "xp": 10, "level": 99, "message_count": 3}, {"id": str(U2), "xp": 20}]}, "mee6"),
        ({"users": {str(U1): {"xp": 10, "level": 4}, str(U2): {"xp": 20}}}, "polaris"),
        ({"users": [{"id": str(U1), "xp": 10}, {"id": str(U2), "xp": 20}]}, "polaris"),
        ({"levels": [{"userId": str(U1), "xp": 10, "messageCount": 1}, {"userId": str(U2), "xp": 20}]}, "lurkr"),
        ({"data": [{"id": str(U1), "exp": 10, "level": 2}, {"id": str(U2), "exp": 20, "weeklyExp": 1}]}, "amari"),
        (f"User ID,Username,Level,XP\n{U1},a,50,10\n{U2},b,1,20\n", "csv"),
        (f"userId;EXP\r\n{U1};10\r\n\r\n{U2};20\r\n", "csv"),
        (f"\ufeffDiscord ID\tTotal XP\n{U1}\t10\n{U2}\t20\n", "csv"),
    ],
)
def test_each_shape_is_detected_and_levels_are_ignored(document: object, fmt: str) -> None:
    found, entries, invalid = parse(document)
    assert found == fmt
    assert invalid == []
    assert [(u, x) for u, x, _ in entries] == [(U1, 10), (U2, 20)]


def test_our_own_document_keeps_every_field_and_absent_fields_stay_none() -> None:
    doc = {
        "format": "synapse-members",
        "version": 1,
        "guild_id": "1",
        "exported_at": "2026-01-01T00:00:00+00:00",
        "members": [
            {
                "user_id": str(U1),
                "xp": 5,
                "gold": 7,
                "lifetime_stars": 3,
                "github_username": "octo",
                "achievements": ["First", "First", "Second"],
                "left": True,
            },
            {"user_id": str(U2)},
        ],
    }
    parsed = parse_document(json.dumps(doc).encode(), max_bytes=LIMIT)
    assert parsed.format == "synapse-members"
    first, second = parsed.entries
    assert first == ImportEntry(0, U1, 5, 7, 3, True, "octo", ("First", "Second"), True)
    assert second == ImportEntry(1, U2)


def test_invalid_and_duplicate_rows_are_reported_by_index() -> None:
    fmt, entries, invalid = parse(
        [
            {"id": str(U1), "xp": 1},
            {"id": "abc", "xp": 1},
            {"id": str(U2), "xp": -5},
            {"id": str(U2), "xp": "12"},
            "not an object",
            {"xp": 3},
            {"id": str(U1), "xp": 9},
            {"id": str(U3), "xp": 1, "gold": True},
            {"id": "0", "xp": 1},
        ]
    )
    assert fmt == "array"
    assert entries == [(U1, 1, None)]
    assert [i for i, _ in invalid] == [1, 2, 3, 4, 5, 6, 7, 8]
    reasons = dict(invalid)
    assert "user id" in reasons[1]
    assert "between 0" in reasons[2]
    assert "integer" in reasons[3]  # a number as a string is a type error in JSON
    assert "object" in reasons[4]
    assert "required" in reasons[5]
    assert "duplicate of row 0" in reasons[6]
    assert "gold" in reasons[7]


def test_csv_rows_are_validated_and_the_header_must_name_both_columns() -> None:
    _, entries, invalid = parse(f"id,xp,gold\n{U1},10,\n{U2},x,1\n{U3}\n")
    assert entries == [(U1, 10, None)]
    assert [i for i, _ in invalid] == [1, 2]
    with pytest.raises(ImportFormatError, match="XP column"):
        parse(f"id,level\n{U1},3\n")
    with pytest.raises(ImportFormatError, match="user id column"):
        parse("name,xp\na,3\n")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\xff\xfe", "UTF-8"),
        (b"{not json", "JSON"),
        (b'"a string"', "header"),  # not JSON-looking: read as CSV without the needed columns
        (b"42", "header"),
        (b'{"something": []}', "unrecognised"),
        (b'{"format": "other", "members": []}', "unknown format"),
        (b'{"format": "synapse-members", "version": 2, "members": []}', "version"),
        (b'{"format": "synapse-members", "version": 1, "members": {}}', "array"),
    ],
)
def test_documents_that_cannot_be_imported_raise(raw: bytes, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        parse_document(raw, max_bytes=LIMIT)


def test_the_byte_and_entry_limits() -> None:
    with pytest.raises(DocumentTooLarge):
        parse_document(b"[]" + b" " * 100, max_bytes=101)
    assert parse_document(b"[]" + b" " * 99, max_bytes=101).entries == ()
    many = "[" + ",".join(["1"] * (MAX_ENTRIES + 1)) + "]"
    with pytest.raises(ImportFormatError, match="at most 200000"):
        parse_document(many.encode(), max_bytes=len(many))


_ids = st.lists(st.integers(1, 2**63 - 1), min_size=0, max_size=30, unique=True)
_rows = _ids.flatmap(
    lambda ids: st.tuples(st.just(ids), st.lists(st.integers(0, 10**12), min_size=len(ids), max_size=len(ids)))
)


def _render(fmt: str, rows: list[tuple[int, int]]) -> str:
    if fmt == "array":
        return json.dumps([{"user_id": str(u), "xp": x} for u, x in rows])
    if fmt == "mee6":
        return json.dumps({"players": [{"id": str(u), "xp": x, "level": 3} for u, x in rows]})
    if fmt == "polaris":
        return json.dumps({"users": {str(u): {"xp": x} for u, x in rows}})
    if fmt == "lurkr":
        return json.dumps({"levels": [{"userId": str(u), "xp": x} for u, x in rows]})
    if fmt == "amari":
        return json.dumps({"data": [{"id": str(u), "exp": x} for u, x in rows]})
    return "user_id,xp\n" + "".join(f"{u},{x}\n" for u, x in rows)


@settings(max_examples=60, deadline=None)
@given(rows=_rows, fmt=st.sampled_from(["array", "mee6", "polaris", "lurkr", "amari", "csv"]))
def test_every_shape_round_trips(rows: tuple[list[int], list[int]], fmt: str) -> None:
    pairs = list(zip(*rows, strict=True))
    parsed = parse_document(_render(fmt, pairs).encode(), max_bytes=LIMIT)
    assert parsed.invalid == ()
    assert [(e.user_id, e.xp) for e in parsed.entries] == pairs
    assert [e.index for e in parsed.entries] == list(range(len(pairs)))


@settings(max_examples=200, deadline=None)
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_arbitrary_input_is_parsed_or_refused_never_crashes(raw: bytes) -> None:
    try:
        parsed = parse_document(raw, max_bytes=LIMIT)
    except ImportFormatError:
        return
    seen = {e.index for e in parsed.entries} | {r.index for r in parsed.invalid}
    assert len(seen) == len(parsed.entries) + len(parsed.invalid)  # every row lands exactly once
    assert all(e.xp is None or e.xp >= 0 for e in parsed.entries)


# --- the plan ------------------------------------------------------------------------------------------------------

CURVE = curve_for(100, 1.25)


def test_add_adds_replace_sets_and_absent_fields_stay() -> None:
    state = MemberState(xp=100, gold=50, lifetime_stars=4, level=1)
    entry = ImportEntry(0, U1, xp=200, gold=None, lifetime_stars=1)
    added = plan_member(entry, state, "add", CURVE, ())
    assert (added.xp, added.gold, added.lifetime_stars) == (300, 50, 5)
    assert (added.xp_delta, added.gold_delta, added.star_delta) == (200, 0, 1)
    assert added.new_level == CURVE.level(300) and added.changed
    replaced = plan_member(entry, state, "replace", CURVE, ())
    assert (replaced.xp, replaced.gold, replaced.lifetime_stars) == (200, 50, 1)
    assert replaced.xp_delta == 100 and replaced.star_delta == -3
    same = plan_member(ImportEntry(0, U1, xp=100), state, "replace", CURVE, ())
    assert not same.changed


def test_a_new_member_is_created_and_named_achievements_split_known_from_unknown() -> None:
    entry = ImportEntry(0, U1, xp=0, achievements=("Known", "Earned", "Nope"))
    plan = plan_member(entry, None, "add", CURVE, {"Known", "Earned"})
    assert plan.created and plan.changed
    assert plan.achievements == ("Known", "Earned") and plan.unknown_achievements == ("Nope",)
    earned = plan_member(entry, MemberState(earned=frozenset({"Earned"})), "add", CURVE, {"Known", "Earned"})
    assert earned.achievements == ("Known",)


def test_role_changes_follow_the_current_level_in_both_modes() -> None:
    rewards = [(2, 11), (5, 12)]
    assert role_change(1, 6, rewards, "stack") == (frozenset({11, 12}), frozenset())
    assert role_change(3, 6, rewards, "replace") == (frozenset({12}), frozenset({11}))
    assert role_change(6, 1, rewards, "replace") == (frozenset(), frozenset({12}))


def test_totals_count_level_and_role_changes() -> None:
    totals = PlanTotals("array", "add")
    plan = plan_member(ImportEntry(0, U1, xp=1000), None, "add", CURVE, ())
    totals.add(plan, 0, [(2, 11)], "stack")
    out = totals.as_json()
    assert out["members_created"] == 1 and out["xp_delta"] == 1000
    assert out["level_changes"] == {"count": 1, "items": [{"user_id": str(U1), "from": 1, "to": CURVE.level(1000)}]}
    assert out["level_role_changes"] == {"count": 1, "items": [{"user_id": str(U1), "add": ["11"], "remove": []}]}


# --- limits while parsing, the whole document validated (SPEC §20.1) ------------------------------------------------


def _rows(n: int) -> str:
    return ",".join(f'{{"id":"{U1 + i}","xp":1}}' for i in range(n))


@pytest.mark.parametrize(
    "document",
    [
        "[" + _rows(MAX_ENTRIES + 1) + ",{{{ never parsed",
        '{"players": [' + _rows(MAX_ENTRIES + 1) + ",{{{ never parsed",
        '{"format": "synapse-members", "version": 1, "members": [' + _rows(MAX_ENTRIES + 1) + "!! never parsed",
        "id,xp\n" + "".join(f"{U1 + i},1\n" for i in range(MAX_ENTRIES + 1)) + '"' + "x" * 200_000 + '"\n',
    ],
    ids=["array", "mee6", "own", "csv"],
)
def test_the_row_limit_is_enforced_while_parsing_before_the_rest_is_read(document: str) -> None:
    """The text after entry 200,001 is broken: a parser that reads everything first reports that, not the limit."""
    with pytest.raises(ImportFormatError, match=f"more than {MAX_ENTRIES} entries"):
        parse_document(document.encode(), max_bytes=len(document) + 1)


@pytest.mark.parametrize(
    ("github", "problem"),
    [("bad--name", "single hyphens"), ("-lead", "single hyphens"), ("a" * 40, "1–39"), ("", "1–39"), (7, "GitHub")],
)
def test_github_names_follow_the_link_github_rule(github: object, problem: str) -> None:
    doc = {"format": "synapse-members", "version": 1, "members": [
        {"user_id": str(U1), "github_username": "octo-cat"}, {"user_id": str(U2), "github_username": github},
    ]}  # fmt: skip
    _, entries, invalid = parse(doc)
    assert [u for u, _, _ in entries] == [U1]
    assert [i for i, _ in invalid] == [1] and problem in invalid[0][1] and invalid[0][1].startswith("github_username")


def test_non_json_numbers_and_trailing_data_refuse_the_document() -> None:
    for text in (f'[{{"id": "{U1}", "xp": NaN}}]', f'[{{"id": "{U1}", "xp": 1}}] []', '{"players": [] ,}'):
        with pytest.raises(ImportFormatError, match="not valid JSON"):
            parse_document(text.encode(), max_bytes=LIMIT)


def test_keys_may_come_in_any_order_and_unknown_containers_are_skipped() -> None:
    doc = f'{{"members": [{{"user_id": "{U1}", "xp": 3}}], "extra": {{"a": [1, [2]]}}, "version": 1,'
    doc += ' "format": "synapse-members"}'
    assert parse(doc) == ("synapse-members", [(U1, 3, None)], [])


# --- levels=keep (issue 26) ------------------------------------------------------------------------------------------


def _mee6_row(user: int, level: int, third: int = 3) -> dict[str, object]:
    span = 5 * level * level + 50 * level + 100
    start = sum(5 * n * n + 50 * n + 100 for n in range(level))
    return {"id": str(user), "level": level, "xp": start + span // third, "detailed_xp": [span // third, span, 0]}


@pytest.mark.parametrize("level", [0, 1, 2, 7, 20, 45, 99, 150])
def test_keep_puts_a_mee6_member_at_the_same_level_with_the_same_fraction(level: int) -> None:
    parsed = parse_document(json.dumps({"players": [_mee6_row(U1, level)]}).encode(), max_bytes=LIMIT)
    (entry,) = parsed.entries
    kept = plan_member(entry, None, "replace", CURVE, (), "keep")
    recomputed = plan_member(entry, None, "replace", CURVE, (), "recompute")
    ours = max(level, 1)
    assert kept.new_level == ours and recomputed.xp == entry.xp
    start, end = CURVE.xp_to_reach(ours), CURVE.required(ours)
    into, span = entry.source_progress or (0, 1)
    assert into == span // 3  # a third of the way through the level there, and here
    assert kept.xp == start + (end - start) * into // span  # MEE6 level 0 is our level 1
    without_detail = dict(_mee6_row(U1, level), detailed_xp=None)  # MEE6's public curve gives the same fraction
    (bare,) = parse_document(json.dumps({"players": [without_detail]}).encode(), max_bytes=LIMIT).entries
    assert plan_member(bare, None, "replace", CURVE, (), "keep").xp == kept.xp


def test_keep_without_a_level_uses_the_xp_and_a_bad_level_is_an_invalid_row() -> None:
    parsed = parse_document(
        json.dumps([{"id": str(U1), "xp": 1000}, {"id": str(U2), "xp": 5, "level": "7"}]).encode(), max_bytes=LIMIT
    )
    assert plan_member(parsed.entries[0], None, "add", CURVE, (), "keep").xp == 1000
    assert [r.index for r in parsed.invalid] == [1] and parsed.invalid[0].reason.startswith("level")


def test_the_report_samples_members_before_and_after_up_to_its_cap() -> None:
    totals = PlanTotals("array", "add")
    state = MemberState(xp=100, gold=5, level=CURVE.level(100))
    plan = plan_member(ImportEntry(0, U1, xp=900, gold=2), state, "add", CURVE, ())
    totals.add(plan, 0, [], "stack")
    assert totals.as_json()["sample"] == [
        {
            "user_id": str(U1),
            "xp_before": 100,
            "xp_after": 1000,
            "gold_before": 5,
            "gold_after": 7,
            "level_before": CURVE.level(100),
            "level_after": CURVE.level(1000),
        }
    ]
    for i in range(CHANGE_SAMPLE_MAX + 5):
        totals.add(plan_member(ImportEntry(i, U2 + i, xp=1), None, "add", CURVE, ()), i, [], "stack")
    assert len(totals.as_json()["sample"]) == CHANGE_SAMPLE_MAX  # a sample, not every member
    assert totals.members_changed == CHANGE_SAMPLE_MAX + 6  # the counts stay exact
