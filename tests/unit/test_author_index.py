"""The author LRU of SPEC §7.4 (bot/authors.py): packed entries round-trip exactly, the least recently used entry
goes first, and the index never holds more than its capacity (SPEC §25: every in-memory structure is bounded)."""

from __future__ import annotations

import pytest

from synapse_async.bot.authors import AuthorIndex, pack_author, unpack_author

BIG = (1 << 63) - 1  # the largest snowflake PostgreSQL's bigint holds


@pytest.mark.parametrize(
    ("author", "is_bot", "channel"),
    [(1, False, 2), (BIG, True, BIG), (BIG, False, 0), (0, True, BIG), (100000000000001000, False, 100000000000000101)],
)
def test_packed_entries_round_trip(author: int, is_bot: bool, channel: int) -> None:
    assert unpack_author(pack_author(author, is_bot, channel)) == (author, is_bot, channel)


def test_the_least_recently_used_entry_is_evicted_and_a_lookup_counts_as_use() -> None:
    index = AuthorIndex(3)
    for m in (1, 2, 3):
        index.remember(m, 100 + m, m == 2, 900)
    assert index.known(1) == (101, False)  # 1 is now the most recently used
    index.remember(4, 104, False, 900)
    assert len(index) == 3
    assert index.known(2) is None  # the least recently used went
    assert index.known(1) == (101, False) and index.known(3) == (103, False) and index.known(4) == (104, False)
    index.remember(3, 999, True, 901)  # remembered again: replaced, and most recent
    index.remember(5, 105, False, 900)
    assert index.known(3) == (999, True) and index.known(1) is None
    assert len(index) == 3


def test_the_index_stays_within_its_capacity() -> None:
    index = AuthorIndex(1000)
    for m in range(10_000):
        index.remember(m, m + 1, False, 7)
    assert len(index) == 1000
    assert index.known(9_999) == (10_000, False) and index.known(9_000) == (9_001, False)
    assert index.known(8_999) is None
    index.forget_all()
    assert len(index) == 0
    with pytest.raises(ValueError, match="at least 1"):
        AuthorIndex(0)
