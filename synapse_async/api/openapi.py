"""The OpenAPI 3.1 document, generated from the declared routes and their pydantic models (SPEC §18).

Nothing here is written by hand per endpoint: parameters come from the path and query models, request bodies
from the body models (validation schema: snowflakes as strings or integers), responses from the response models
(serialization schema: snowflakes as strings), every error status from `ErrorBody`, and the security of each
operation from its declared access. OpenAPI 3.1 uses JSON Schema 2020-12, which is what pydantic emits.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from synapse_async.api.contract import Access, Api, Operation
from synapse_async.api.schema import ErrorBody

REF: Final = "#/components/schemas/{model}"
SECURITY_SCHEMES: Final = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "synapse_token"},
}
_ERRORS: Final = {
    Access.PUBLIC: (400, 404, 429, 503),
    Access.AUTHENTICATED: (400, 401, 403, 409, 413, 429, 503),
    Access.GUILD_ADMIN: (400, 401, 403, 404, 409, 413, 429, 503),
}
_STATUS_TEXT: Final = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No content",
    400: "Invalid input (`validation_error`, `invalid_json`)",
    401: "Missing, invalid, expired or revoked token (`unauthenticated`)",
    403: "Not allowed (`forbidden`, `csrf_failed`)",
    404: "Unknown resource or guild (`not_found`)",
    409: "Conflict (`conflict`; `details.reason` names the clash, e.g. `key_reused` for an `Idempotency-Key`)",
    413: "Body over the limit (`payload_too_large`)",
    429: "Rate limited (`rate_limited`; `Retry-After`)",
    503: "Temporarily unavailable (`unavailable`)",
}


def _models(api: Api) -> list[tuple[type[BaseModel], JsonSchemaMode]]:
    wanted: dict[tuple[type[BaseModel], JsonSchemaMode], None] = {(ErrorBody, "serialization"): None}
    for op in api.operations:
        wanted[(op.path_model, "validation")] = None
        wanted[(op.query_model, "validation")] = None
        if op.body_model is not None:
            wanted[(op.body_model, "validation")] = None
        if op.response_model is not None:
            wanted[(op.response_model, "serialization")] = None
        for model in op.alternatives.values():
            wanted[(model, "serialization")] = None
    return list(wanted)


def _plain(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema as a string in a URL: absent means None, so `null` and the integer form go."""
    out = {k: v for k, v in schema.items() if k not in ("description", "title")}
    for combinator in ("anyOf", "oneOf"):
        options = [o for o in out.get(combinator, ()) if o.get("type") != "null"]
        if combinator in out and options:
            strings = [o for o in options if o.get("type") == "string"]
            chosen = strings[0] if strings and "pattern" in strings[0] else options[0] if len(options) == 1 else None
            if chosen is not None:
                del out[combinator]
                out.update(chosen)
            else:
                out[combinator] = options
    if out.get("default", 0) is None:
        del out["default"]
    return out


def _parameters(
    model: type[BaseModel], where: Literal["path", "query"], defs: dict[str, Any], ref: dict[str, Any]
) -> list[dict[str, Any]]:
    schema = defs[ref["$ref"].rsplit("/", 1)[1]]
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        description = prop.get("description")
        param: dict[str, Any] = {"name": name, "in": where, "required": where == "path" or name in required}
        param["schema"] = _plain(prop)
        if description:
            param["description"] = description
        out.append(param)
    return out


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": _STATUS_TEXT.get(status, "Error"),
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }


def _operation(op: Operation, refs: dict[Any, Any], defs: dict[str, Any]) -> dict[str, Any]:
    params = _parameters(op.path_model, "path", defs, refs[(op.path_model, "validation")])
    params += _parameters(op.query_model, "query", defs, refs[(op.query_model, "validation")])
    if op.is_write and op.access is not Access.PUBLIC:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
                "description": "Retries with the same key and body get the stored first response (24 h).",
            }
        )
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(op.status, "OK")}
    if op.response_model is not None:
        success["content"] = {"application/json": {"schema": refs[(op.response_model, "serialization")]}}
    responses: dict[str, Any] = {str(op.status): success}
    for status, text in op.responses.items():
        responses[str(status)] = {"description": text}
        if 200 <= status < 300 and status != 204 and "content" in success:  # another success with the same body
            responses[str(status)]["content"] = success["content"]
    for status, model in op.alternatives.items():  # another success with its own body (a dry run's preview)
        schema = refs[(model, "serialization")]
        entry = responses.setdefault(str(status), {"description": _STATUS_TEXT.get(status, "OK")})
        if "content" in entry:
            schema = {"oneOf": [entry["content"]["application/json"]["schema"], schema]}
        entry["content"] = {"application/json": {"schema": schema}}
    for status in _ERRORS[op.access]:
        responses.setdefault(str(status), _error_response(status))
    responses["default"] = {
        "description": "Any other error, in the uniform error body",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}},
    }
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": responses,
    }
    if op.description:
        out["description"] = op.description
    if op.body_model is not None:
        out["requestBody"] = {
            "required": not op.body_optional,
            "content": {"application/json": {"schema": refs[(op.body_model, "validation")]}},
        }
    if op.raw_body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {}}, "text/csv": {"schema": {"type": "string"}}},
        }
    out["security"] = [] if op.access is Access.PUBLIC else [{"bearer": []}, {"cookie": []}]
    return out


def build_document(api: Api, version: str) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document of `api`."""
    refs, schema = models_json_schema(_models(api), ref_template=REF)
    defs: dict[str, Any] = schema.get("$defs", {})
    paths: dict[str, dict[str, Any]] = {}
    for op in api.operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, defs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "synapse-async API",
            "version": version,
            "description": (
                "Public guild statistics and the authenticated admin API (SPEC §18–§22). No text anywhere (path,"
                " query, body, object keys) may contain U+0000, which PostgreSQL cannot store: such input is a 400."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": defs, "securitySchemes": SECURITY_SCHEMES},
    }
