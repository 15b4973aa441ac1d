"""Applying level-role rewards on Discord (SPEC §13).

The decision of which roles a member should hold is pure and lives in `synapse_async.rewards.roles`; this package
turns such a plan into at most one member update through hikari, with the pre-checks, retries, pacing and
bookkeeping that only make sense next to a live Discord connection.
"""

from synapse_async.levelroles.syncer import LevelRoleSyncer

__all__ = ["LevelRoleSyncer"]
