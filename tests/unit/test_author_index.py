"""The author cache of SPEC §7.4 (bot/author_table.py, behind bot/authors.py): exact values for every id it holds,
CLOCK eviction (unused entries in arrival order, a looked-up one gets a second round), and never more than its
capacity (SPEC §25: every in-memory structure is bounded)."""

from __future__ import annotations

import random

import pytest

from synapse_async.bot.author_table import AuthorTable
from synapse_async.bot.authors import AuthorIndex

BIG = (1 << 63) - 1  # the largest snowflake PostgreSQL's bigint holds


class ReferenceClock:
    """The same CLOCK policy over plain Python lists: what the array table must hold after every operation."""

    def __init__(self, capacity: int) -> None:
        self.ring: list[int | None] = [None] * capacity
        self.used = [False] * capacity
        self.values: dict[int, tuple[int, bool, int]] = {}
        self.hand = 0

    def put(self, mid: int, value: tuple[int, bool, int]) -> None:
        if mid in self.values:
            self.values[mid] = value
            self.used[self.ring.index(mid)] = False
            return
        while True:
            pos = self.hand
            self.hand = (pos + 1) % len(self.ring)
            old = self.ring[pos]
            if old is not None and self.used[pos]:
                self.used[pos] = False
                continue
            if old is not None:
                del self.values[old]
            self.ring[pos], self.used[pos], self.values[mid] = mid, False, value
            return

    def get(self, mid: int) -> tuple[int, bool, int] | None:
        if mid not in self.values:
            return None
        self.used[self.ring.index(mid)] = True
        return self.values[mid]


@pytest.mark.parametrize("capacity", [1, 2, 7, 64])
def test_random_operations_match_the_reference_clock(capacity: int) -> None:
    """Small capacities and few distinct ids: long probe runs, wrap-arounds and deletions inside runs."""
    rng = random.Random(capacity)
    table, ref = AuthorTable(capacity), ReferenceClock(capacity)
    ids = [rng.choice([0, 1, BIG, rng.randrange(1, BIG)]) for _ in range(3 * capacity + 5)]
    for step in range(4000):
        mid = rng.choice(ids)
        if rng.random() < 0.6:
            value = (rng.randrange(BIG), rng.random() < 0.5, rng.randrange(BIG))
            table.put(mid, *value)
            ref.put(mid, value)
        else:
            assert table.get(mid) == ref.get(mid), step
        assert len(table) == len(ref.values) <= capacity
    for mid in set(ids):  # every id: present with its latest value, or absent in both
        assert table.get(mid) == ref.get(mid)


def test_ids_that_collide_are_all_found_after_deletions_between_them() -> None:
    table = AuthorTable(8)  # a 16-slot table: ids with equal homes are easy to find
    home = table._home
    colliding = [m for m in range(1, 5000) if home(m) == home(1)][:6]
    assert len(colliding) == 6
    for m in colliding:
        table.put(m, m + 1, False, 7)
    for m in range(5):  # 2 fill the ring, 3 more evict the 3 oldest colliding ids, from inside their probe run
        table.put(10_000 + m, 1, False, 1)
    assert [table.get(m) for m in colliding[:3]] == [None, None, None]
    assert [table.get(m) for m in colliding[3:]] == [(m + 1, False, 7) for m in colliding[3:]]


def test_unused_entries_go_in_arrival_order_and_a_looked_up_one_gets_a_second_round() -> None:
    index = AuthorIndex(3)
    for m in (1, 2, 3):
        index.remember(m, 100 + m, m == 2, 900)
    assert index.known(1) == (101, False)  # 1 is used: the hand passes it once
    index.remember(4, 104, False, 900)
    assert index.known(2) is None  # the oldest unused entry went
    assert index.known(1) == (101, False) and index.known(3) == (103, False) and index.known(4) == (104, False)
    index.remember(3, 999, True, 901)  # remembered again: replaced in place
    assert index.known(3) == (999, True)
    assert len(index) == 3


def test_the_index_stays_within_its_capacity_and_holds_the_newest() -> None:
    index = AuthorIndex(1000)
    for m in range(10_000):
        index.remember(m, m + 1, False, 7)
    assert len(index) == 1000
    assert all(index.known(m) == (m + 1, False) for m in range(9_000, 10_000))
    assert index.known(8_999) is None
    index.forget_all()
    assert len(index) == 0 and index.known(9_999) is None
    with pytest.raises(ValueError, match="at least 1"):
        AuthorIndex(0)
