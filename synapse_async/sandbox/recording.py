"""Recording of every REST call the client makes, plus the HTTP plumbing shared by the REST route modules.

Tests assert on what the bot actually sent to "Discord" (route, body, audit-log reason), so every request under
the API base and the OAuth2 pages is recorded by a middleware with its response status, whatever handler (or
none) served it. Request bodies are parsed once here (JSON, url-encoded forms, and hikari's multipart messages with
`payload_json`), because an aiohttp body stream can only be consumed once.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_RECORDED_HEADERS = ("Authorization", "X-Audit-Log-Reason", "User-Agent", "Content-Type")


@dataclass(slots=True)
class UploadedFile:
    """A file part of a multipart request (only metadata is kept: for a PNG, its pixel size, as Discord reports
    `width`/`height` of image attachments)."""

    field: str
    filename: str | None
    size: int
    content_type: str | None
    width: int | None = None
    height: int | None = None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk, or None when `data` is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@dataclass(slots=True)
class ParsedBody:
    """A request body: `json` for JSON or multipart `payload_json`, `form` for url-encoded / plain form fields."""

    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


@dataclass(slots=True)
class RestCall:
    """One REST request as the simulator received it, and how it answered."""

    method: str
    route: str | None
    """Route template relative to the API base, e.g. `/guilds/{guild_id}/members/{user_id}`."""
    path: str
    """Actual path relative to the API base."""
    query: dict[str, str]
    json: Any
    form: dict[str, str]
    files: list[UploadedFile]
    headers: dict[str, str]
    status: int
    response: Any = None
    at: float = field(default_factory=time.time)

    @property
    def audit_reason(self) -> str | None:
        """The URL-decoded `X-Audit-Log-Reason` header, as Discord stores it."""
        raw = self.headers.get("X-Audit-Log-Reason")
        return urllib.parse.unquote(raw) if raw is not None else None


def parse_body(content_type_header: str, raw: bytes) -> ParsedBody:
    """Parse a request body from its full `Content-Type` header; unknown or empty bodies give an empty ParsedBody."""
    if not raw:
        return ParsedBody()
    content_type = content_type_header.split(";", 1)[0].strip().lower()
    if content_type == "application/json":
        try:
            return ParsedBody(json=json.loads(raw))
        except ValueError:
            return ParsedBody()
    if content_type == "application/x-www-form-urlencoded":
        return ParsedBody(form=dict(urllib.parse.parse_qsl(raw.decode(), keep_blank_values=True)))
    if content_type.startswith("multipart/"):
        return _parse_multipart(content_type_header, raw)
    return ParsedBody()


def _parse_multipart(content_type_header: str, raw: bytes) -> ParsedBody:
    # aiohttp only parses multipart from the live stream; the stdlib parser works on the buffered bytes.
    header = f"Content-Type: {content_type_header}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(header + raw)
    body = ParsedBody()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if filename is not None:
            width, height = png_size(data) or (None, None)
            body.files.append(UploadedFile(str(name), filename, len(data), part.get_content_type(), width, height))
        elif name == "payload_json":
            try:
                body.json = json.loads(data)
            except ValueError:
                body.json = None
        elif name is not None:
            body.form[str(name)] = data.decode(errors="replace")
    return body


BODY_KEY = web.RequestKey("sandbox.body", ParsedBody)


def body_of(request: web.Request) -> ParsedBody:
    """The parsed body the recording middleware stored on the request."""
    return request.get(BODY_KEY) or ParsedBody()


def discord_error(status: int, code: int, message: str, errors: JSON | None = None) -> web.Response:
    """An error response with Discord's JSON error body (hikari turns these into typed HTTP errors)."""
    body: JSON = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return web.json_response(body, status=status)


def unknown(entity: str, code: int) -> web.Response:
    return discord_error(404, code, f"Unknown {entity}")


BeforeHandler = Callable[[web.Request], Awaitable[None]]


class RestRecorder:
    """Holds the recorded calls and lets tests wait for one.

    `before` hooks run before a recorded call is handled (after its body was read): a test can make something
    happen at an exact point of the app's work, e.g. commit a change while a job's first member update is in
    flight, instead of hoping a timer lands there. Hooks see every call; each decides whether it acts.
    """

    def __init__(self, api_base_path: str) -> None:
        self.api_base_path = api_base_path.rstrip("/")
        self.calls: list[RestCall] = []
        self.before: list[BeforeHandler] = []
        self._changed = asyncio.Condition()

    def _relative(self, path: str) -> str:
        if path.startswith(self.api_base_path + "/"):
            return path[len(self.api_base_path) :]
        return path

    def should_record(self, path: str) -> bool:
        return path.startswith(self.api_base_path + "/") or path.startswith("/oauth2/")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not self.should_record(request.path):
            return await handler(request)
        raw = await request.read()
        body = parse_body(request.headers.get("Content-Type", ""), raw)
        request[BODY_KEY] = body
        for hook in list(self.before):
            await hook(request)
        try:
            response = await handler(request)
        except web.HTTPNotFound:
            response = discord_error(404, 0, "404: Not Found")
        except web.HTTPMethodNotAllowed:
            response = discord_error(405, 0, "405: Method Not Allowed")
        resource = request.match_info.route.resource
        route = self._relative(resource.canonical) if resource is not None else None
        answer: Any = None
        if isinstance(response, web.Response) and response.content_type == "application/json" and response.body:
            body_bytes = response.body
            if isinstance(body_bytes, bytes):
                try:
                    answer = json.loads(body_bytes)
                except ValueError:
                    answer = None
        call = RestCall(
            method=request.method,
            route=route,
            path=self._relative(request.path),
            query=dict(request.query),
            json=body.json,
            form=dict(body.form),
            files=list(body.files),
            headers={h: request.headers[h] for h in _RECORDED_HEADERS if h in request.headers},
            status=response.status,
            response=answer,
        )
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()
        return response

    async def wait_for(
        self, predicate: Callable[[RestCall], bool], timeout: float = 5.0, *, since: int = 0
    ) -> RestCall:
        """The first recorded call at index >= `since` matching `predicate`, waiting up to `timeout` seconds."""

        def find() -> RestCall | None:
            for call in self.calls[since:]:
                if predicate(call):
                    return call
            return None

        async with asyncio.timeout(timeout), self._changed:
            found = find()
            while found is None:
                await self._changed.wait()
                found = find()
            return found
