"""How many import documents one process holds at a time (SPEC §20.1: ≤ 2 dry runs per process, 1 import per guild).

An upload is up to `IMPORT_MAX_BYTES` (20 MiB) and costs several times that while it is decoded, parsed and
stored, so the number of documents in memory is what bounds the process's memory, not the number of requests:
the API takes a slot *before* reading the body and refuses at once when none is free (429, or 409 when this
guild's import is already being uploaded). Dry runs and submissions share the `bodies` slots, so however many
guilds upload at once, at most `bodies` documents are in memory (an admission choice recorded in
docs/decisions.md). Pure in-process state on the event loop: no locks needed, nothing awaited.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["DEFAULT_BODIES", "ImportBusy", "ImportSlots", "ImportUploading"]

DEFAULT_BODIES: Final = 2


class ImportBusy(Exception):
    """Every slot is taken: try again shortly (429)."""


class ImportUploading(Exception):
    """An import of the guild is being uploaded right now by another request (409)."""


class ImportSlots:
    def __init__(self, bodies: int = DEFAULT_BODIES) -> None:
        self._bodies = bodies
        self._in_use = 0
        self._guilds: set[int] = set()

    @property
    def in_use(self) -> int:
        return self._in_use

    @contextmanager
    def hold(self, guild_id: int, *, dry_run: bool) -> Iterator[None]:
        """One document's slot for the duration of the request; raises instead of waiting."""
        if not dry_run and guild_id in self._guilds:
            raise ImportUploading(guild_id)
        if self._in_use >= self._bodies:
            raise ImportBusy()
        self._in_use += 1
        if not dry_run:
            self._guilds.add(guild_id)
        try:
            yield
        finally:
            self._in_use -= 1
            if not dry_run:
                self._guilds.discard(guild_id)
