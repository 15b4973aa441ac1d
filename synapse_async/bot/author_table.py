"""The author cache of SPEC §7.4 in flat arrays: message id → (author id, bot flag, channel id), no Python object per
entry (issue 27's memory target).

Why not a dict: every entry of a dict-based LRU is a few small Python objects (the key, the value, an ordering
node) that live exactly `capacity` messages and are freed in arrival order while short-lived objects are allocated
around them. At 100,000 entries that was 33 MB (cachetools) or 16 MB (one OrderedDict of packed ints), and the
churn left CPython's small-object arenas fragmented: the app's resident set rose 7 MB more after ≈ 180,000
messages although the number of live blocks stayed flat (bench/memory.py). Here everything is allocated once:
a ring of `capacity` slots (ids, authors, channels, flags) and an open-addressing hash table (linear probing,
backward-shift deletion, no tombstones) of ring positions, ≥ twice the capacity so it stays at most half full.
About 4.6 MB for 100,000 entries, whatever the traffic.

Eviction is CLOCK, the classic approximation of least-recently-used: a lookup sets the entry's `used` bit; the
hand that chooses where the next message goes skips (and clears) entries whose bit is set, so a message still
being reacted to survives another round while unused ones go in arrival order. Snowflakes are 63-bit, so the
arrays are unsigned 64-bit; the table hashes the whole id (Discord's low bits are mostly zero).
"""

from __future__ import annotations

from array import array

_EMPTY = -1
_MIX = 0x9E3779B97F4A7C15  # Fibonacci hashing multiplier (2^64 / golden ratio)
_U64 = (1 << 64) - 1


class AuthorTable:
    """At most `capacity` message authors; `get` and `put` are O(1) on average."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        bits = max(4, (2 * capacity - 1).bit_length())
        self._shift = 64 - bits
        self._mask = (1 << bits) - 1
        self._slots = array("q", [_EMPTY]) * (1 << bits)  # table: ring position, or _EMPTY
        self._ids = array("Q", [0]) * capacity
        self._authors = array("Q", [0]) * capacity
        self._channels = array("Q", [0]) * capacity
        self._live = bytearray(capacity)
        self._bots = bytearray(capacity)
        self._used = bytearray(capacity)
        self._hand = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def _home(self, message_id: int) -> int:
        return ((message_id * _MIX) & _U64) >> self._shift

    def _find(self, message_id: int) -> tuple[int, int]:
        """(table index, ring position) of the id; the ring position is _EMPTY and the index the free slot where
        it would go when the id is absent."""
        slots, ids, mask = self._slots, self._ids, self._mask
        i = self._home(message_id)
        while (pos := slots[i]) != _EMPTY:
            if ids[pos] == message_id:
                return i, pos
            i = (i + 1) & mask
        return i, _EMPTY

    def get(self, message_id: int) -> tuple[int, bool, int] | None:
        _, pos = self._find(message_id)
        if pos == _EMPTY:
            return None
        self._used[pos] = 1
        return self._authors[pos], bool(self._bots[pos]), self._channels[pos]

    def put(self, message_id: int, author_id: int, is_bot: bool, channel_id: int) -> None:
        i, pos = self._find(message_id)
        if pos == _EMPTY:
            pos = self._evict()
            i, _ = self._find(message_id)  # the eviction may have shifted the table
            self._slots[i] = pos
            self._ids[pos] = message_id
            self._live[pos] = 1
            self._len += 1
        self._authors[pos] = author_id
        self._channels[pos] = channel_id
        self._bots[pos] = 1 if is_bot else 0
        self._used[pos] = 0

    def clear(self) -> None:
        self._slots = array("q", [_EMPTY]) * len(self._slots)
        self._live = bytearray(self.capacity)
        self._used = bytearray(self.capacity)
        self._hand = 0
        self._len = 0

    def _evict(self) -> int:
        """A free ring position: the next one without its `used` bit (clearing the bits passed over); its entry,
        if any, leaves the table."""
        live, used, cap = self._live, self._used, self.capacity
        while True:
            pos = self._hand
            self._hand = (pos + 1) % cap
            if not live[pos]:
                return pos
            if used[pos]:
                used[pos] = 0
                continue
            i, _ = self._find(self._ids[pos])
            self._delete(i)
            live[pos] = 0
            self._len -= 1
            return pos

    def _delete(self, i: int) -> None:
        """Empty table slot `i`, moving later entries of its probe run back so no lookup loses its way."""
        slots, ids, mask = self._slots, self._ids, self._mask
        j = i
        while True:
            j = (j + 1) & mask
            pos = slots[j]
            if pos == _EMPTY:
                break
            home = self._home(ids[pos])
            # The entry at j may move to i unless its home lies cyclically in (i, j].
            if (i < home <= j) if i <= j else (home > i or home <= j):
                continue
            slots[i] = pos
            i = j
        slots[i] = _EMPTY
