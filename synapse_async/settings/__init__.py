"""Typed per-guild settings (SPEC §5): the registry, value validation and the resolved view.

Pure code: nothing in this package touches the database, the network or the clock. Storage, caching and NOTIFY
live elsewhere and call in here, so every rule about a setting is stated once. Import from this package, not
from its submodules.
"""

from synapse_async.domain.snowflakes import SNOWFLAKE_MAX
from synapse_async.settings.registry import (
    CATEGORIES,
    LAKE_EVENT_TYPES,
    PUBLIC_KEYS,
    REGISTRY,
    SETTING_TYPES,
    SettingDef,
    SettingType,
    jobs_triggered,
    lake_source_key,
)
from synapse_async.settings.validation import (
    GuildContext,
    InvalidStoredValue,
    Problem,
    ProblemCode,
    ResolvedSettings,
    describe,
    normalize_stored,
    rule,
    to_json,
    validate_reset,
    validate_updates,
)

__all__ = [
    "CATEGORIES",
    "LAKE_EVENT_TYPES",
    "PUBLIC_KEYS",
    "REGISTRY",
    "SETTING_TYPES",
    "SNOWFLAKE_MAX",
    "GuildContext",
    "InvalidStoredValue",
    "Problem",
    "ProblemCode",
    "ResolvedSettings",
    "SettingDef",
    "SettingType",
    "describe",
    "jobs_triggered",
    "lake_source_key",
    "normalize_stored",
    "rule",
    "to_json",
    "validate_reset",
    "validate_updates",
]
