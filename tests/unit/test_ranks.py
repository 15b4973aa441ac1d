"""The one §17.1 rank definition (services/ranks.py), without I/O: pages of a ranked list and the cached index.

rank = 1 + ranked members with a strictly higher value; ties share a rank; value 0 (and members who left, which
the loaders never return) are not ranked and not counted in `of`.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from synapse_async.services.ranks import RankBoard, RankIndex, page_ranks, rank_from_higher


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


async def test_the_index_shares_ties_ignores_zero_values_reloads_after_the_ttl_and_stays_bounded() -> None:
    now = [0.0]
    loads: list[int] = []
    values = {1: [0, 0, 10, 50, 50, 90], 2: [5], 3: [7]}

    def loader(guild: int):  # type: ignore[no-untyped-def]
        async def load() -> list[int]:
            loads.append(guild)
            return values[guild]

        return load

    ranks = RankIndex(5.0, max_boards=2, clock=lambda: now[0])
    board = RankBoard(1)
    assert await ranks.rank(board, 90, loader(1)) == (1, 4)  # `of` leaves the two 0-XP members out
    assert await ranks.rank(board, 50, loader(1)) == (2, 4)  # ties share the rank
    assert await ranks.rank(board, 10, loader(1)) == (4, 4)
    assert await ranks.rank(board, 0, loader(1)) == (None, 4)  # a 0-XP member is not ranked
    assert loads == [1]  # one load serves every rank within the TTL
    values[1] = [10, 50, 50, 90, 95]
    now[0] = 6.0
    assert await ranks.rank(board, 90, loader(1)) == (2, 5) and loads == [1, 1]
    await ranks.rank(RankBoard(2), 5, loader(2))
    await ranks.rank(RankBoard(3), 7, loader(3))  # a third board evicts the least recently used one
    await ranks.rank(board, 90, loader(1))
    assert loads == [1, 1, 2, 3, 1]
    assert await ranks.rank(RankBoard(1, "gold"), 1, loader(3)) == (2, 1)  # another currency is another board
