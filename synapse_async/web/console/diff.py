"""What an audit row changed, as rows of (field, before, after) for the audit page (SPEC §22: full snapshots).

Snapshots are whole rows; an admin wants to see the two or three fields that moved, not two JSON blobs. Pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

MISSING: Final = "—"


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    before: str
    after: str


def shown(value: Any) -> str:
    """A snapshot value as short text: strings as they are, everything else as compact JSON."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def changes(before: Any, after: Any) -> list[Change]:
    """The fields whose values differ, in the order they first appear; a created row lists every field with
    before "—", a deleted one every field with after "—". Non-object snapshots compare as one `value`."""
    if isinstance(before, dict) or isinstance(after, dict):
        old = before if isinstance(before, dict) else {}
        new = after if isinstance(after, dict) else {}
        keys = list(dict.fromkeys([*old, *new]))
        return [
            Change(k, shown(old[k]) if k in old else MISSING, shown(new[k]) if k in new else MISSING)
            for k in keys
            if old.get(k, MISSING) != new.get(k, MISSING) or (k in old) != (k in new)
        ]
    if before == after:
        return []
    return [Change("value", MISSING if before is None else shown(before), MISSING if after is None else shown(after))]
