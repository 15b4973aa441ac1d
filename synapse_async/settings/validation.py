"""Checking, normalising and resolving setting values (SPEC §5.1). Pure functions: no I/O, no clock.

Three value forms exist and every conversion between them goes through this module, so the admin API, the
JSONB column and the hot path can never drift apart:

* **input** - whatever the admin sent (parsed JSON), untrusted;
* **python** (normalised) - what the config cache and the reward pipeline use: ``int``, ``float`` (always a
  ``float``, never ``-0.0``), ``bool``, trimmed ``str``, ``int | None`` for snowflakes and ``tuple[int, ...]``
  (deduplicated, order kept) for snowflake lists;
* **JSON** - what is stored in ``settings.value`` and returned by the API: snowflakes as strings (JavaScript
  clients cannot hold 64-bit integers exactly), lists as JSON arrays.

Problem codes follow SPEC §18: ``unknown_setting``, ``invalid_type``, ``out_of_range``, ``not_allowed`` and
``constraint``. Choices made where the spec leaves room:

* a string containing control characters is ``not_allowed`` (its type is right, its content is not);
* a snowflake that is not a channel/role of the guild is ``not_allowed`` (like an enum value outside its set);
  ``constraint`` is kept for the cross-field rule so clients can tell the two apart;
* NaN and infinities are ``invalid_type`` (they are not JSON numbers at all, even if Python's parser lets them
  through); zero and negative snowflakes, and snowflakes beyond signed 64 bits, are ``out_of_range``.
"""

from __future__ import annotations

import builtins
import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, Protocol, cast

from typing_extensions import override

from synapse_async.domain.snowflakes import InvalidSnowflake, to_snowflake
from synapse_async.settings.registry import REGISTRY, SettingDef

ProblemCode = Literal["unknown_setting", "invalid_type", "out_of_range", "not_allowed", "constraint"]

_SNOWFLAKE_RULE: Final = "must be a Discord ID (a digit string or a positive integer)"
# Unicode category Cc (C0, DEL, C1), the line/paragraph separators, and lone surrogates: the latter cannot be
# encoded as UTF-8, so PostgreSQL would reject them and the write would fail with a 500 instead of a 400.
_FORBIDDEN_CHARS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a settings write is refused; becomes one entry of the 400 response's ``details``."""

    field: str
    problem: ProblemCode
    message: str

    def as_detail(self) -> dict[str, str]:
        """The SPEC §18 ``details`` entry (``field`` and ``problem``), plus the human ``message``."""
        return {"field": self.field, "problem": self.problem, "message": self.message}


class GuildContext(Protocol):
    """What existence checks need to know about a guild; the caller answers from its cache, so this stays pure."""

    def text_channel_ids(self) -> Collection[int]:
        """Channels usable for announcements (text and announcement channels, not deleted)."""
        ...

    def role_ids(self) -> Collection[int]:
        """Roles the guild currently has."""
        ...


class InvalidStoredValue(ValueError):
    """A stored or supplied value that breaks its setting's rules (e.g. written before a bound was tightened)."""

    def __init__(self, key: str, problems: list[Problem]) -> None:
        self.key = key
        self.problems = problems
        super().__init__(f"{key}: " + "; ".join(p.message for p in problems))


# --------------------------------------------------------------------------------------------------------------
# Single values
# --------------------------------------------------------------------------------------------------------------


def _fmt(x: float | None) -> str:
    """Render a bound the way an admin wrote it: ``1000``, not ``1000.0``; ``1.01`` stays ``1.01``."""
    if x is None:
        return "?"
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def rule(d: SettingDef) -> str:
    """The sentence stating a setting's rule, used in every problem message for it."""
    lo, hi = _fmt(d.min), _fmt(d.max)
    if d.type == "int":
        return f"must be an integer between {lo} and {hi}"
    if d.type == "float":
        return f"must be a number between {lo} and {hi}"
    if d.type == "bool":
        return "must be true or false"
    if d.type == "string" and d.pattern_rule:
        return d.pattern_rule
    if d.type == "string":
        return f"must be text of {lo} to {hi} characters without control characters or line breaks"
    if d.type == "enum":
        return "must be one of: " + ", ".join(d.allowed or ())
    if d.type == "snowflake":
        return _SNOWFLAKE_RULE + (", or null" if d.nullable else "")
    return f"must be a list of at most {hi} Discord IDs (digit strings or positive integers)"


def _is_json_int(raw: object) -> bool:
    # bool is a subclass of int, and JSON `true` must not pass as 1.
    return isinstance(raw, int) and not isinstance(raw, bool)


def _in_range(d: SettingDef, x: float) -> bool:
    return (d.min is None or x >= d.min) and (d.max is None or x <= d.max)


def _snowflake(raw: object) -> tuple[int | None, ProblemCode | None]:
    """Parse one non-null snowflake; returns (value, None) or (None, problem code)."""
    try:
        return to_snowflake(raw), None
    except InvalidSnowflake as exc:
        return None, exc.problem


def _validate_value(d: SettingDef, raw: object) -> tuple[object, list[Problem]]:
    """Check one input (or stored) value against its definition and return its python form.

    On failure the returned value is meaningless and the problem list is non-empty. Every failure names the
    setting key and repeats the full rule, so an admin sees what *is* accepted, not just that something is off.
    """
    key = d.key
    msg = rule(d)

    def fail(code: ProblemCode, message: str = msg) -> tuple[object, list[Problem]]:
        return None, [Problem(key, code, message)]

    if d.type == "int":
        if not _is_json_int(raw):
            return fail("invalid_type")
        if not _in_range(d, cast(int, raw)):
            return fail("out_of_range")
        return raw, []

    if d.type == "float":
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            return fail("invalid_type")
        if isinstance(raw, float) and not math.isfinite(raw):
            return fail("invalid_type")
        # Compare before converting: a huge JSON integer would overflow float() and must be out_of_range.
        if not _in_range(d, raw):
            return fail("out_of_range")
        return float(raw) + 0.0, []  # + 0.0 turns -0.0 into 0.0

    if d.type == "bool":
        if not isinstance(raw, bool):
            return fail("invalid_type")
        return raw, []

    if d.type == "string":
        if raw is None and d.nullable:
            return None, []
        if not isinstance(raw, str):
            return fail("invalid_type")
        text = raw.strip()
        if _FORBIDDEN_CHARS.search(text):
            return fail("not_allowed", "must not contain control characters or line breaks")
        if d.nullable and not text:
            return None, []  # an emptied form field clears a nullable setting
        if not _in_range(d, len(text)):
            return fail("out_of_range")
        if d.pattern is not None and re.fullmatch(d.pattern, text) is None:
            return fail("not_allowed")
        return text, []

    if d.type == "enum":
        if not isinstance(raw, str):
            return fail("invalid_type")
        if raw not in (d.allowed or ()):
            return fail("not_allowed")
        return raw, []

    if d.type == "snowflake":
        if raw is None:
            return (None, []) if d.nullable else fail("invalid_type")
        value, code = _snowflake(raw)
        if code is not None:
            return fail(code)
        return value, []

    # snowflake_list
    if not isinstance(raw, list | tuple):
        return fail("invalid_type")
    problems: list[Problem] = []
    ids: dict[int, None] = {}  # an insertion-ordered set: dedupe, keep first occurrence
    for index, item in enumerate(raw):
        value, code = _snowflake(item)
        if code is not None:
            problems.append(Problem(key, code, f"item {index} {_SNOWFLAKE_RULE}"))
        elif value is not None:
            ids[value] = None
    if not problems and not _in_range(d, len(ids)):
        problems.append(Problem(key, "out_of_range", msg))
    return tuple(ids), problems


def _guild_problems(d: SettingDef, value: object, guild: GuildContext) -> list[Problem]:
    """Existence checks against the guild; only for values being written now (see validate_updates)."""
    if d.key == "announce.channel_id" and value is not None:
        if value not in guild.text_channel_ids():
            return [Problem(d.key, "not_allowed", f"{value} is not a text channel of this server")]
    elif d.key == "access.admin_role_ids":
        roles = guild.role_ids()
        return [
            Problem(d.key, "not_allowed", f"{role_id} is not a role of this server")
            for role_id in cast(tuple[int, ...], value)
            if role_id not in roles
        ]
    return []


# --------------------------------------------------------------------------------------------------------------
# Cross-field constraints
# --------------------------------------------------------------------------------------------------------------

_LONG, _MEDIUM = "quality.long_chars", "quality.medium_chars"


def _effective(key: str, pending: Mapping[str, object], current: Mapping[str, object]) -> object:
    """A key's value in the resulting set: the pending write, else the stored override, else the default.

    A stored override that no longer validates counts as the default, because that is what the config cache
    resolves it to as well (it cannot be applied).
    """
    if key in pending:
        return pending[key]
    if key in current:
        value, problems = _validate_value(REGISTRY[key], current[key])
        if not problems:
            return value
    return REGISTRY[key].default


def _constraint_problems(
    pending: Mapping[str, object], current: Mapping[str, object], touched: Collection[str]
) -> list[Problem]:
    """Cross-field rules on the resulting set, checked only when the write touches one of the rule's keys.

    Checking only when touched means a stored state that somehow breaks a rule (manual SQL, an older version)
    does not block edits of unrelated settings with an error about keys the admin never sent; every validated
    write or reset that *could* break the rule is still refused.
    """
    if _LONG not in touched and _MEDIUM not in touched:
        return []
    long_chars = _effective(_LONG, pending, current)
    medium_chars = _effective(_MEDIUM, pending, current)
    if cast(int, long_chars) > cast(int, medium_chars):
        return []
    return [
        Problem(
            _LONG,
            "constraint",
            f"quality.long_chars ({long_chars}) must be greater than quality.medium_chars ({medium_chars})",
        )
    ]


# --------------------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------------------


def validate_updates(
    updates: Mapping[str, object] | object,
    current: Mapping[str, object],
    guild: GuildContext | None = None,
) -> tuple[dict[str, object], list[Problem]]:
    """Validate a whole ``PATCH …/settings`` body; all-or-nothing (SPEC §5.1, invariant 6).

    Returns ``(values, problems)``. ``values`` maps every sent key to its python form and is **empty whenever
    ``problems`` is non-empty**, so a caller that writes ``values`` can never write part of a bad request.
    Every problem is reported, not just the first, and each names its key.

    ``current`` is the guild's stored overrides (python or JSON form both work): cross-field rules are checked on
    the resulting set, i.e. defaults overlaid with ``current`` overlaid with ``updates``. ``guild`` enables the
    existence checks (announcement channel, admin roles); they apply to the values in this write only, because
    a channel deleted after it was configured must not block edits of unrelated settings. ``guild=None`` skips
    them (imports, tests, no cache yet).

    A body that is not a JSON object yields a single ``values``/``invalid_type`` problem; an empty object is
    valid and returns ``({}, [])``.
    """
    if not isinstance(updates, Mapping):
        return {}, [Problem("values", "invalid_type", "must be an object mapping setting keys to values")]
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for key, raw in updates.items():
        d = REGISTRY.get(key) if isinstance(key, str) else None
        if d is None:
            problems.append(Problem(str(key), "unknown_setting", "is not a known setting"))
            continue
        value, found = _validate_value(d, raw)
        if not found and guild is not None:
            found = _guild_problems(d, value, guild)
        if found:
            problems.extend(found)
        else:
            values[key] = value
    if not any(p.field in (_LONG, _MEDIUM) for p in problems):
        # A rejected input for either key has no value to compare; its own problem already blocks the write.
        problems.extend(_constraint_problems(values, current, updates.keys()))
    if problems:
        return {}, problems
    return values, []


def validate_reset(keys: Iterable[str], current: Mapping[str, object]) -> list[Problem]:
    """Check that removing the overrides of ``keys`` (``DELETE …/settings/{key}``) leaves a valid set.

    Resetting is a write too: with ``medium_chars`` = 1000 and ``long_chars`` = 2000 stored, resetting
    ``long_chars`` to its default 500 would break the cross-field rule, so it is refused the same way a PATCH
    would be. Unknown keys give ``unknown_setting``.
    """
    keys = list(keys)
    problems = [Problem(k, "unknown_setting", "is not a known setting") for k in keys if k not in REGISTRY]
    if problems:
        return problems
    remaining = {k: v for k, v in current.items() if k not in keys}
    return _constraint_problems({}, remaining, keys)


def normalize_stored(key: str, raw: object) -> object:
    """Turn a value read back from ``settings.value`` (JSONB) into its python form (snowflakes as ``int``).

    Raises ``KeyError`` for a key the registry does not know (e.g. a setting removed in a later version) and
    ``InvalidStoredValue`` (a ``ValueError``) for a value that breaks today's rules. Callers building the config
    cache should log and skip such rows: the setting then resolves to its default, which is always valid.
    Guild existence checks are not repeated here (stored ids may have been deleted since; consumers must cope).
    """
    d = REGISTRY[key]
    value, problems = _validate_value(d, raw)
    if problems:
        raise InvalidStoredValue(key, problems)
    return value


def to_json(key: str, value: object) -> object:
    """The JSON form of a value for API responses and JSONB storage: snowflakes become strings.

    Accepts the python or the JSON form (it normalises first), so it is safe on anything; an invalid value raises
    ``InvalidStoredValue`` rather than being written or shown.
    """
    d = REGISTRY[key]
    value = normalize_stored(key, value)
    if d.type == "snowflake":
        return None if value is None else str(value)
    if d.type == "snowflake_list":
        return [str(v) for v in cast(tuple[int, ...], value)]
    return value


def describe(key: str) -> dict[str, object]:
    """Metadata for ``GET …/settings``: ``{key, type, default, min, max, allowed, category, description, public}``.

    The caller adds ``value`` and ``is_default``. The default is in JSON form; ``allowed`` is a list or None.
    """
    d = REGISTRY[key]
    return {
        "key": d.key,
        "type": d.type,
        "default": to_json(key, d.default),
        "min": d.min,
        "max": d.max,
        "allowed": list(d.allowed) if d.allowed is not None else None,
        "category": d.category,
        "description": d.description,
        "public": d.public,
    }


# --------------------------------------------------------------------------------------------------------------
# Resolved view for the hot path
# --------------------------------------------------------------------------------------------------------------

_DEFAULTS: Final[Mapping[str, object]] = MappingProxyType({k: d.default for k, d in REGISTRY.items()})


class ResolvedSettings:
    """One guild's settings with overrides merged over defaults; immutable, typed, cheap to read.

    Built once per config-cache load, then read by every reward computation. Construction normalises every
    override (python or JSON form) so getters are dictionary lookups. A getter of the wrong type raises
    ``TypeError`` and an unknown key ``KeyError``: both are programming errors that must fail loudly in tests
    rather than silently yield a default.
    """

    __slots__ = ("_overrides", "_values")

    def __init__(self, overrides: Mapping[builtins.str, object]) -> None:
        """Raises ``KeyError`` for unknown keys and ``InvalidStoredValue`` for invalid values."""
        normalized = {key: normalize_stored(key, raw) for key, raw in overrides.items()}
        self._overrides: Mapping[builtins.str, object] = MappingProxyType(normalized)
        self._values: dict[builtins.str, object] = {**_DEFAULTS, **normalized}

    def _get(self, key: builtins.str, *types: builtins.str) -> object:
        d = REGISTRY[key]
        if d.type not in types:
            raise TypeError(f"setting {key!r} is of type {d.type}, not {'/'.join(types)}")
        return self._values[key]

    def int(self, key: builtins.str) -> builtins.int:
        return cast(builtins.int, self._get(key, "int"))

    def float(self, key: builtins.str) -> builtins.float:
        return cast(builtins.float, self._get(key, "float"))

    def bool(self, key: builtins.str) -> builtins.bool:
        return cast(builtins.bool, self._get(key, "bool"))

    def str(self, key: builtins.str) -> builtins.str:
        """Value of a ``string`` or ``enum`` setting."""
        return cast(builtins.str, self._get(key, "string", "enum"))

    def snowflake(self, key: builtins.str) -> builtins.int | None:
        return cast("builtins.int | None", self._get(key, "snowflake"))

    def snowflakes(self, key: builtins.str) -> tuple[builtins.int, ...]:
        return cast("tuple[builtins.int, ...]", self._get(key, "snowflake_list"))

    def raw(self, key: builtins.str) -> object:
        """The python value of any setting, whatever its type."""
        return self._values[key]

    def is_default(self, key: builtins.str) -> builtins.bool:
        """True when the guild has no stored override for ``key`` (an override equal to the default is not)."""
        if key not in REGISTRY:
            raise KeyError(key)
        return key not in self._overrides

    @property
    def overrides(self) -> Mapping[builtins.str, object]:
        """The normalised overrides this view was built from (read-only)."""
        return self._overrides

    def as_dict(self) -> dict[builtins.str, object]:
        """Every setting's python value, in registry order; a fresh dict the caller may modify."""
        return dict(self._values)

    @override
    def __eq__(self, other: object) -> builtins.bool:
        if not isinstance(other, ResolvedSettings):
            return NotImplemented
        return dict(self._overrides) == dict(other._overrides)

    @override
    def __repr__(self) -> builtins.str:
        return f"ResolvedSettings({dict(self._overrides)!r})"
