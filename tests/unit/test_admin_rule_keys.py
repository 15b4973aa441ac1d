"""Each rule route's path model names its fields after its table's key columns, so the key is read from the path
(no I/O: a path model in a stand-in call)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from synapse_async.api.admin import config
from synapse_async.services import reward_rules as rules


def _key(path: object, spec: rules.RuleTable) -> dict[str, object]:
    return config._rule_key(cast(Any, SimpleNamespace(path=path)), spec)


def test_rule_keys_come_from_the_path_in_the_tables_column_order() -> None:
    type_default = config.TypeDefaultPath(guild_id=1, channel_type="voice", event_type="voice_tick")
    assert _key(type_default, rules.TYPE_DEFAULTS) == {"channel_type": "voice", "event_type": "voice_tick"}
    override = config.OverridePath(guild_id=1, channel_id=55, event_type="*")
    assert list(_key(override, rules.CHANNEL_OVERRIDES).items()) == [("channel_id", 55), ("event_type", "*")]
    assert _key(config.RolePath(guild_id=1, role_id=7), rules.ROLE_MULTIPLIERS) == {"role_id": 7}
    no_xp = config.NoXpPath(guild_id=1, target_type="role", target_id=9)
    assert _key(no_xp, rules.NO_XP_TARGETS) == {"target_type": "role", "target_id": 9}
