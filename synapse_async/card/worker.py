"""The render worker process: its own fonts, its own interpreter, so rendering never holds the app's GIL.

Pillow's text drawing and PNG encoding hold the GIL for milliseconds at a time; in a thread of the app's process
that delays the event loop by as much (measured by `bench/card.py`). A worker process built with `start` renders
a `CardData` it receives pickled and returns the PNG bytes. Its font book is the process's own, built once by the
pool's initializer (`init`), which is the only state the module keeps.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Final

from synapse_async.card.fonts import FontBook
from synapse_async.card.render import CardData, render

NICENESS: Final = 10
_fonts: FontBook | None = None


def init(font_dirs: Sequence[str]) -> None:
    """Pool initializer: yield the CPU to the app's process (the event loop comes first when the cores are busy),
    then find the fonts once per worker process."""
    global _fonts
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    _fonts = FontBook.from_system(font_dirs)


def ready() -> bool:
    """A no-op job: submitting it starts a worker (and runs `init`) ahead of the first card."""
    return _fonts is not None


def render_card(card: CardData) -> bytes:
    """Render in the worker (its font book from `init`)."""
    if _fonts is None:
        init(())
    assert _fonts is not None
    return render(card, _fonts)
