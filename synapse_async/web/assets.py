"""Static assets under content-hashed paths (SPEC §28.1): `/static/app.3f9c2a1b.css`, cached for a year.

The files ship inside the package (`web/static/`). At start each file is read once and hashed; a page links the
hashed name (`asset("app.css")`), so a changed file gets a new URL and a year-long `immutable` cache is safe. Only
the hashed names are routed: an unhashed or stale name is 404, never a stale file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Final

from aiohttp import web

PREFIX: Final = "/static/"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
_TYPES: Final = {
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain",
}


@dataclass(frozen=True, slots=True)
class Asset:
    url: str
    body: bytes
    content_type: str


class Assets:
    """Every file of `web/static/`, read and hashed once."""

    def __init__(self) -> None:
        self._by_name: dict[str, Asset] = {}
        self._by_url: dict[str, Asset] = {}
        root = resources.files("synapse_async.web") / "static"
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if not entry.is_file():
                continue
            name = entry.name
            stem, dot, ext = name.rpartition(".")
            body = entry.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            asset = Asset(f"{PREFIX}{stem}.{digest}{dot}{ext}", body, _TYPES.get(f".{ext}", "application/octet-stream"))
            self._by_name[name] = asset
            self._by_url[asset.url] = asset

    def url(self, name: str) -> str:
        """The hashed URL of `name` (KeyError for a file that does not exist: a template typo fails loudly)."""
        return self._by_name[name].url

    async def serve(self, request: web.Request) -> web.Response:
        asset = self._by_url.get(request.path)
        if asset is None:
            raise web.HTTPNotFound()
        headers = {"Cache-Control": IMMUTABLE, "X-Content-Type-Options": "nosniff"}
        etag = '"' + asset.url.rsplit(".", 2)[-2] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers | {"ETag": etag})
        charset = "utf-8" if asset.content_type.startswith(("text/", "image/svg")) else None
        return web.Response(
            body=asset.body, content_type=asset.content_type, charset=charset, headers=headers | {"ETag": etag}
        )
