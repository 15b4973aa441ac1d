"""The one §17.1 rank definition (services/ranks.py), without I/O: pages of a ranked list and the lifetime-XP count
tree (`xp_rank_counts`: what its nodes hold and which of them a rank sums).

rank = 1 + ranked members with a strictly higher value; ties share a rank; value 0 (and members who left, which
the loaders never return) are not ranked and not counted in `of`.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from synapse_async.services.ranks import (
    RANK_BITS,
    RANK_LEVELS,
    higher_ranges,
    node_keys,
    page_ranks,
    rank_from_higher,
    xp_higher_sql,
)


def _reference(values: list[int], value: int) -> int | None:
    """§17.1 written out: 1 + the number of ranked values strictly above."""
    return 1 + sum(1 for v in values if v > value) if value > 0 else None


def test_a_page_that_starts_inside_a_tie_shows_the_ties_rank_not_a_position() -> None:
    ordered = [90, 50, 50, 50, 10]
    assert page_ranks(ordered, offset=0, first_rank=1) == [1, 2, 2, 2, 5]
    # Page 2 of size 2 starts with the second 50: its rank is 2 (1 + one member above), not position 3.
    assert page_ranks(ordered[2:4], offset=2, first_rank=2) == [2, 2]
    assert page_ranks(ordered[3:], offset=3, first_rank=2) == [2, 5]


@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=40), st.integers(0, 39), st.data())
def test_every_page_agrees_with_the_definition(values: list[int], offset: int, data: st.DataObject) -> None:
    ordered = sorted(values, reverse=True)
    offset = min(offset, len(ordered) - 1)
    size = data.draw(st.integers(1, len(ordered) - offset))
    page = ordered[offset : offset + size]
    first = _reference(ordered, page[0])
    assert first is not None
    assert page_ranks(page, offset=offset, first_rank=first) == [_reference(ordered, v) for v in page]


def test_value_zero_has_no_rank() -> None:
    assert rank_from_higher(0, 0) is None and rank_from_higher(3, 7) == 4


def _counts(values: list[int]) -> Counter[tuple[int, int]]:
    """What `xp_rank_counts` holds for a guild whose ranked members have `values` (the triggers' rule)."""
    return Counter(node for v in values if v > 0 for node in node_keys(v))


def _higher_from_counts(counts: Counter[tuple[int, int]], value: int) -> int:
    """The sum `xp_higher_sql` computes: the nodes of `higher_ranges(value)`."""
    total = 0
    for level, above, last in higher_ranges(value):
        total += sum(
            n for (lv, key), n in counts.items() if lv == level and key > above and (last is None or key <= last)
        )
    return total


_EDGES = [1, 254, 255, 256, 257, 65_535, 65_536, 65_537, (1 << 24) - 1, 1 << 24, (1 << 24) + 1, 1 << 40, (1 << 62)]
_VALUES = st.one_of(
    st.integers(0, 600), st.integers(0, 1 << 26), st.sampled_from(_EDGES), st.integers(0, (1 << 63) - 1)
)


@given(st.lists(_VALUES, max_size=60), _VALUES)
def test_counting_the_tree_nodes_gives_the_definition(values: list[int], value: int) -> None:
    """Members strictly above, from the counts of at most 255 sibling nodes per level, equal the brute-force count,
    on level boundaries too (255/256, 2^16, 2^24, the open-ended top level)."""
    counts = _counts(values)
    assert _higher_from_counts(counts, value) == sum(1 for v in values if v > value)
    # `of` is the sum of the top level's nodes.
    assert sum(n for (level, _), n in counts.items() if level == RANK_LEVELS - 1) == sum(1 for v in values if v > 0)


@given(_VALUES)
def test_a_rank_reads_a_bounded_number_of_nodes(value: int) -> None:
    """Every range but the top one spans at most 255 keys: the cost of a rank does not grow with the guild."""
    ranges = higher_ranges(value)
    assert [level for level, _, _ in ranges] == list(range(RANK_LEVELS))
    for _, above, last in ranges[:-1]:
        assert last is not None and 0 <= last - above <= (1 << RANK_BITS) - 1
    assert ranges[-1][2] is None


def test_the_sql_reads_the_same_ranges() -> None:
    """`xp_higher_sql` spells out `higher_ranges`: one index range per level, the top one open-ended."""
    sql = xp_higher_sql(":g", ":v")
    for level in range(RANK_LEVELS):
        assert f"c.level = {level} AND c.key > (CAST(:v AS bigint) >> {RANK_BITS * level})" in sql
    assert sql.count("c.key <= ") == RANK_LEVELS - 1
