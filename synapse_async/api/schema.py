"""Shared pydantic types of the HTTP API (SPEC §18): snowflakes, times, the error body, pagination.

These are the only building blocks request and response models use, so every endpoint agrees on what a
snowflake or a page looks like, and the OpenAPI document (generated from the same models) says so too.
Snowflakes are accepted as digit strings or integers and always rendered as strings; request times must carry
an offset; unknown fields are rejected by `StrictModel`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Final, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, PydanticCustomError
from typing_extensions import override

from synapse_async.domain.snowflakes import SNOWFLAKE_MAX, SNOWFLAKE_MAX_DIGITS, InvalidSnowflake, to_snowflake

T = TypeVar("T")


def _snowflake(value: object) -> int:
    try:
        return to_snowflake(value)
    except InvalidSnowflake as exc:
        raise PydanticCustomError(exc.problem, "must be a Discord id (digits)") from None


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _at_most(limit: str) -> str:
    """A regex for digit strings of exactly `len(limit)` digits, without a leading zero, at most `limit`."""
    options = []
    for i, digit in enumerate(limit):
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(limit) - i - 1
            options.append(f"{limit[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    options.append(limit)
    return "|".join(options)


def _snowflake_pattern() -> str:
    """What `to_snowflake` accepts as text, exactly: ASCII digits, at most 20 of them (leading zeros included),
    with a value from 1 to 2^63 − 1. Written out so a generated client refuses what the server would."""
    top = str(SNOWFLAKE_MAX)
    shorter = [f"0{{0,{SNOWFLAKE_MAX_DIGITS - n}}}[1-9][0-9]{{{n - 1}}}" for n in range(1, len(top))]
    longest = f"0{{0,{SNOWFLAKE_MAX_DIGITS - len(top)}}}(?:{_at_most(top)})"
    return "^(?:" + "|".join([*shorter, longest]) + ")$"


SNOWFLAKE_PATTERN: Final = _snowflake_pattern()
_SNOWFLAKE_TEXT: Final = {"type": "string", "pattern": SNOWFLAKE_PATTERN}

Snowflake = Annotated[
    int,
    BeforeValidator(_snowflake),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {"oneOf": [_SNOWFLAKE_TEXT, {"type": "integer", "minimum": 1, "maximum": SNOWFLAKE_MAX}]},
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]{1,20}$"}, mode="serialization"),
]
"""A Discord id: in as a digit string or an integer (1 … 2^63 − 1), out as a string."""

UtcTime = Annotated[datetime, PlainSerializer(_utc_text, return_type=str)]
"""A response time: RFC 3339 in UTC with a `Z` suffix."""

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})?")


def _rfc3339_text(value: object) -> object:
    """Only RFC 3339 text: pydantic would otherwise read `0.5` as a Unix timestamp."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise PydanticCustomError("invalid_format", "must be an RFC 3339 date-time with an offset")
    return value


def _in_utc(value: datetime) -> datetime:
    """The time in UTC; one that leaves years 1–9999 once its offset is applied (`9999-12-31T23:59:59-23:59`) is a
    400 here rather than an OverflowError where the database driver converts it (§18, issue 21 item 6)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("out_of_range", "must be a representable time (years 1–9999 in UTC)") from None


QueryTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]
"""A request time: RFC 3339 with a mandatory offset (a naive time is refused as `missing_offset`), held in UTC."""


def not_null(value: object) -> object:
    """For PATCH fields that are not nullable: absent means unchanged, an explicit null is a 400 (§18)."""
    if value is None:
        raise PydanticCustomError("invalid_type", "must not be null")
    return value


class StrictModel(BaseModel):
    """Base of every request model: unknown fields are a 400, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PatchModel(StrictModel):
    """Base of PATCH bodies (SPEC §18 merge semantics): every field optional; absent = unchanged, null = clear.

    pydantic records which fields the client actually sent, so `changes()` tells "absent" from "sent as null"
    without sentinel defaults in every model.
    """

    def changes(self) -> dict[str, Any]:
        """Only the fields the client sent, with their values (None means: clear this nullable field)."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    @classmethod
    @override
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """Fields guarded by `not_null` may be absent but never null: the document says so (no `null` option)."""
        schema = handler(core)
        target = handler.resolve_ref_schema(schema)
        guarded = {
            name
            for decorator in cls.__pydantic_decorators__.field_validators.values()
            if getattr(decorator.func, "__func__", decorator.func) is not_null
            for name in decorator.info.fields
        }
        for name, prop in target.get("properties", {}).items():
            if name in guarded and "anyOf" in prop:
                options = [o for o in prop.pop("anyOf") if o.get("type") != "null"]
                prop.pop("default", None)
                if len(options) == 1:
                    prop.update(options[0])
                else:
                    prop["anyOf"] = options
        return schema


class ResponseModel(BaseModel):
    """Base of every response model (the generated schema names them as they are)."""

    model_config = ConfigDict(frozen=True)


class NoParams(StrictModel):
    """Query/path model of an operation that takes none: any parameter given is an `unknown_field`."""


class GuildPath(StrictModel):
    """The `{guild_id}` of every guild route."""

    guild_id: Snowflake


class PageQuery(StrictModel):
    """SPEC §18 pagination parameters."""

    page: int = Field(1, ge=1, le=1_000_000)
    page_size: int = Field(25, ge=1, le=100)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


class Page(ResponseModel, Generic[T]):
    """SPEC §18 page of a list that can grow without bound."""

    items: list[T]
    page: int
    page_size: int
    total: int


class Items(ResponseModel, Generic[T]):
    """SPEC §18 small bounded collection, unpaginated."""

    items: list[T]


class FieldProblemModel(ResponseModel):
    field: str
    problem: str
    message: str | None = None


class ErrorInfo(ResponseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(ResponseModel):
    """The uniform error body of SPEC §18; for `validation_error`, `details` is a list of FieldProblemModel."""

    error: ErrorInfo


_PROBLEM_CODES = {
    "missing": "missing",
    "extra_forbidden": "unknown_field",
    "timezone_aware": "missing_offset",
    "literal_error": "not_allowed",
    "enum": "not_allowed",
    "string_pattern_mismatch": "invalid_format",
    "string_too_short": "invalid_length",
    "string_too_long": "invalid_length",
    "too_short": "invalid_length",
    "too_long": "invalid_length",
    "invalid_type": "invalid_type",
    "invalid_format": "invalid_format",
    "out_of_range": "out_of_range",
}


def problem_code(error_type: str) -> str:
    """The SPEC §18 `problem` of one pydantic error type (a small closed vocabulary clients can switch on)."""
    if error_type in _PROBLEM_CODES:
        return _PROBLEM_CODES[error_type]
    if error_type.startswith(("greater_than", "less_than", "finite_number")) or error_type.endswith("_too_big"):
        return "out_of_range"
    if error_type.endswith(("_type", "_parsing", "_from_datetime_inexact")) or error_type.startswith("model_"):
        return "invalid_type"
    return "invalid_value"


def field_name(loc: tuple[int | str, ...], root: str) -> str:
    """Dotted field path of an error location (`values.xp`, `items.3.user_id`); `root` when it is the whole input."""
    return ".".join(str(part) for part in loc) if loc else root


def problems_of(errors: list[ErrorDetails], root: str) -> list[dict[str, str]]:
    """Every problem of a failed validation, as SPEC §18 `details` entries (all at once, not the first only)."""
    out: list[dict[str, str]] = []
    for err in errors:
        loc = tuple(part for part in err["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        out.append({"field": field_name(loc, root), "problem": problem_code(err["type"]), "message": err["msg"]})
    return out


_INTEGER_LITERAL = re.compile(r"-?[0-9]{1,20}")


@cache
def _integer_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields the document types as integers, and path ids (digit strings); snowflakes, which take their own
    parser, are not among them."""

    def integer(prop: dict[str, Any]) -> bool:
        options = prop.get("anyOf", [prop])
        return any(o.get("type") == "integer" for o in options) or prop.get("pattern") == SNOWFLAKE_PATTERN

    props = model.model_json_schema().get("properties", {})
    return frozenset(name for name, prop in props.items() if integer(prop))


def integer_literal_problems(model: type[BaseModel], values: dict[str, str]) -> list[dict[str, str]]:
    """SPEC §18: query (and path) integers are integer literals. pydantic's lax mode would read `1.0`, `+1` or
    `1_0` as integers; they are refused here too."""
    problems = []
    for name in _integer_fields(model) & values.keys():
        if not _INTEGER_LITERAL.fullmatch(values[name]):
            problems.append({"field": name, "problem": "invalid_type", "message": "must be an integer literal"})
    return problems


def _body_time(value: object) -> datetime:
    """RFC 3339 text to an aware UTC datetime, for bodies validated in strict mode (where pydantic would refuse
    the text itself); a time that cannot be expressed in UTC (year 9999 minus an offset) is out of range."""
    _rfc3339_text(value)
    assert isinstance(value, str)
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        raise PydanticCustomError("invalid_format", "must be an RFC 3339 date-time with an offset") from None
    if parsed.tzinfo is None:
        raise PydanticCustomError("missing_offset", "must carry a UTC offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError("out_of_range", "must be a representable time") from None


BodyTime = Annotated[AwareDatetime, BeforeValidator(_body_time)]
"""A time in a JSON body: RFC 3339 with a mandatory offset, held in UTC."""


PathId = Annotated[
    int,
    Field(ge=1, le=2**63 - 1),
    WithJsonSchema(_SNOWFLAKE_TEXT, mode="validation"),
]
"""A database id (BIGSERIAL) in a path: always text in a URL, documented as exactly the digit strings accepted
(an integer literal of at most 20 digits, 1 … 2^63 − 1; `integer_literal_problems` refuses `1.0`)."""
