"""GitHub's username rules (SPEC §17.2 `/link-github`), shared by the command and the member import (§20.1).

Pure: the one definition, so a name the command refuses can never enter through an import (where the database's
check constraint would otherwise fail the job half-way).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["GITHUB_USERNAME", "github_problem"]

# 1–39 characters, alphanumerics and single hyphens, not at either end.
GITHUB_USERNAME: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")


def github_problem(username: str) -> str | None:
    """Why `username` is not a valid GitHub username, or None if it is."""
    if not 1 <= len(username) <= 39:
        return "must be 1–39 characters"
    if GITHUB_USERNAME.fullmatch(username) is None:
        return "may contain only letters, digits and single hyphens between them"
    return None
