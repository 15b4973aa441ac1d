"""Console form fields generated from a JSON API body model (SPEC §28.3: no hand-written form that can drift).

The template create/patch bodies and the award body are pydantic models; their JSON Schema already says each
field's type, bounds, length and default. `body_fields` turns the chosen properties into `FormField`s through the
same `forms.schema_fields` the trigger configs use, after unwrapping pydantic's `anyOf [X, null]` (a nullable
field). What a schema cannot say — a human label, a help line, a picker of the guild's categories or channels — is
given by the caller; `reference_field` and `channel_field` build those pickers so that "none" is sent as `null`
(console.js `data-json="json"` / nullable snowflake). Pure: no I/O, unit-tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from synapse_async.web.console.forms import FormField, Option, schema_fields

NONE_LABEL: Final = "— none —"
# Upper bounds at or above this are storage limits (int4/int8 ids, counters), not rules an admin needs to read;
# the field shows no range for them (the API still enforces them).
SHOWN_MAXIMUM_BELOW: Final = 2**31 - 1


def unwrap_nullable(spec: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """`{"anyOf": [X, {"type": "null"}], "default": d}` → (X with the outer default and description, True)."""
    branches = spec.get("anyOf")
    if not isinstance(branches, list):
        return dict(spec), False
    kept = [b for b in branches if b.get("type") != "null"]
    if len(kept) != 1 or len(kept) == len(branches):
        return dict(spec), False
    inner = {**kept[0], **{k: v for k, v in spec.items() if k not in ("anyOf", "title")}}
    return inner, True


def body_fields(
    schema: Mapping[str, Any],
    names: Sequence[str],
    values: Mapping[str, Any] | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    help_text: Mapping[str, str] | None = None,
    prefix: str = "",
) -> tuple[FormField, ...]:
    """The properties `names` of a body model's JSON Schema (in that order) as form fields.

    `values` are the current values (an edit form) — absent ones show the schema's default. A nullable field is
    optional whatever the schema's `required` says: an empty input is left out of the body."""
    props = dict(schema.get("properties", {}))
    required = set(schema.get("required", ()))
    flat: dict[str, Any] = {}
    nullable: set[str] = set()
    for name in names:
        spec, is_null = unwrap_nullable(props[name])
        if spec.get("maximum", 0) >= SHOWN_MAXIMUM_BELOW:
            spec = {k: v for k, v in spec.items() if k != "maximum"}
        flat[name] = spec
        if is_null:
            nullable.add(name)
    fields = schema_fields(
        {"properties": flat, "required": [n for n in names if n in required and n not in nullable]}, values, prefix
    )
    labels, help_text = labels or {}, help_text or {}
    out = []
    for f in fields:
        prop = f.name[len(prefix) :]
        out.append(
            dataclasses.replace(
                f,
                label=labels.get(prop, f.label),
                description=help_text.get(prop, f.description),
                nullable=prop in nullable,
            )
        )
    return tuple(out)


def reference_field(
    name: str, label: str, choices: Iterable[tuple[int, str]], value: int | None, description: str = ""
) -> FormField:
    """A picker of the guild's categories, rarities or series; "none" sends `null` (clears it on an edit)."""
    options = (Option("null", NONE_LABEL), *(Option(str(i), text) for i, text in choices))
    known = {o.value for o in options}
    if value is not None and str(value) not in known:  # deleted meanwhile: keep it visible, not silently dropped
        options = (*options, Option(str(value), f"unknown ({value})"))
    return FormField(
        name=name,
        label=label,
        widget="select",
        json_type="json",
        value="null" if value is None else str(value),
        description=description,
        options=options,
        nullable=True,
        error_keys=(name, name.removesuffix("_id")),
    )


def channel_field(
    name: str, label: str, channels: Sequence[Option], value: int | str | None, description: str = ""
) -> FormField:
    """A picker of the guild's text channels by name; "none" sends `null`."""
    options = (Option("", NONE_LABEL), *channels)
    if value is not None and str(value) not in {o.value for o in options}:
        options = (*options, Option(str(value), f"unknown ({value})"))
    return FormField(
        name=name,
        label=label,
        widget="select",
        json_type="snowflake",
        value=None if value is None else str(value),
        description=description,
        options=options,
        nullable=True,
        error_keys=(name,),
    )
