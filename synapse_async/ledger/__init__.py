"""The ledger: one engine for money and levels, shared by every writer (SPEC §10, §12, §14).

- `effects`: what a committed transaction asks for afterwards (announcements, role syncs, cooldowns).
- `state`: one transaction's scratch state (`Tx`, `Cause`, named tuples for levels and preferences).
- `engine`: `LevelEngine` — level change, peak rule, achievement evaluation, earning and grants.
- `sql`: the engine's statements behind keyword-argument helpers (guild first).

The pipeline, the economy service, jobs and the announcer import from here, never from `pipeline`.
"""

from synapse_async.ledger.effects import CooldownKey, Earned, Effects, LevelUp, ManualAward
from synapse_async.ledger.engine import LevelEngine
from synapse_async.ledger.state import Cause, Earning, MemberLevel, NeedsSingles, Preferences, Tx

__all__ = [
    "Cause",
    "CooldownKey",
    "Earned",
    "Earning",
    "Effects",
    "LevelEngine",
    "LevelUp",
    "ManualAward",
    "MemberLevel",
    "NeedsSingles",
    "Preferences",
    "Tx",
]
