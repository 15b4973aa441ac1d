"""The one JSON body reader of the HTTP API (SPEC §18: bad input is a 400, never a 500).

`request.json()` was a source of 500s: it decodes with whatever charset the client names (an unknown one raised
`LookupError`), Python's `json` accepts `NaN`, recurses until `RecursionError` on deeply nested input and raises a
plain `ValueError` for integers beyond 4,300 digits. Here the body must be declared `application/json` (which also
means a browser cannot send it cross-origin without a CORS preflight, see `api/sandbox.py`), in UTF-8, and is
parsed by orjson: strict RFC 8259 (no NaN or Infinity, no lone surrogates, which PostgreSQL would refuse), with
integers beyond 64 bits turned into floats that every integer field then rejects as `invalid_type`. Nesting is
capped well below anything a legitimate body needs. `whole_numbers` then writes integral numbers (`1.0`) as
integers, as JSON Schema reads them, before the strict model validation.
"""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web

from synapse_async.api.errors import ApiError

MAX_JSON_DEPTH: Final = 32
_UTF8: Final = frozenset({"utf-8", "utf8"})


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_json", message)


def json_depth_exceeds(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when arrays/objects nest deeper than `limit` (iterative: a deep value cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def contains_nul(value: Any) -> bool:
    """True when any string (key or value) holds U+0000, which PostgreSQL text and JSONB cannot store."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_json_bytes(raw: bytes) -> Any:
    """Parse a UTF-8 JSON document strictly, or raise the 400 `invalid_json` ApiError."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("The body is not valid JSON (UTF-8, RFC 8259).") from None
    if json_depth_exceeds(value):
        raise _invalid(f"The body nests arrays or objects deeper than {MAX_JSON_DEPTH} levels.")
    if contains_nul(value):
        raise _invalid("The body must not contain U+0000 (NUL) characters.")
    return value


def whole_numbers(raw: bytes) -> bytes:
    """The body with every integral JSON number written as an integer (`1.0` → `1`, `1e2` → `100`).

    JSON and JSON Schema do not tell `1.0` from `1`: both are the integer one, and the OpenAPI document's
    `"type": "integer"` admits both. Bodies are validated strictly (no strings for numbers), and strict pydantic
    refuses a float for an int, so the body is normalized first; fractions (`1.5`) still fail as they should.
    """
    value = orjson.loads(raw)  # already known to parse (read_json_raw); re-encoded only when something changed
    changed = False

    def fix(item: Any) -> Any:
        nonlocal changed
        if isinstance(item, float) and item.is_integer() and abs(item) < 2**64:
            changed = True
            return int(item)
        if isinstance(item, list):
            return [fix(x) for x in item]
        if isinstance(item, dict):
            return {k: fix(v) for k, v in item.items()}
        return item

    fixed = fix(value)
    return orjson.dumps(fixed) if changed else raw


async def read_json_raw(request: web.Request) -> bytes:
    """The request's raw body once it is known to be strict UTF-8 JSON (the route contract validates it with its
    model); 400 `invalid_json` for another content type, another charset or bad JSON.

    The size limit (413) is enforced by aiohttp's `client_max_size` while reading."""
    if request.content_type != "application/json":
        raise _invalid("The body must be JSON sent with Content-Type: application/json.")
    charset = request.charset
    if charset is not None and charset.lower() not in _UTF8:
        raise _invalid("The body must be encoded in UTF-8.")
    raw = await request.read()
    parse_json_bytes(raw)
    return raw


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, parsed (`read_json_raw`'s rules)."""
    return parse_json_bytes(await read_json_raw(request))
