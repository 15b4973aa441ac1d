"""Helpers for the API platform tests: raw HTTP calls, and logging in through the simulator's OAuth."""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt

from synapse_async.runtime import Runtime

TIMEOUT = aiohttp.ClientTimeout(total=30)


@dataclass
class Reply:
    status: int
    headers: Any
    body: Any
    cookies: SimpleCookie


def base(rt: Runtime) -> str:
    return f"http://127.0.0.1:{rt.http_port}"


async def call(method: str, url: str, **kw: Any) -> Reply:
    """One request without following redirects or keeping cookies (the tests look at each hop)."""
    async with aiohttp.ClientSession(timeout=TIMEOUT, cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.request(method, url, allow_redirects=False, **kw) as resp:
            text = await resp.text()
            cookies: SimpleCookie = SimpleCookie()
            for header in resp.headers.getall("Set-Cookie", []):
                cookies.load(header)
            try:
                body = json.loads(text) if text else None
            except ValueError:
                body = text
            return Reply(resp.status, resp.headers, body, cookies)


@dataclass
class Session:
    token: str
    csrf: str
    login: Reply
    urls: list[str]

    def cookie_headers(self, *, csrf: bool = True) -> dict[str, str]:
        headers = {"Cookie": f"synapse_token={self.token}"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def claims_jti(self) -> str:
        return str(jwt.decode(self.token, options={"verify_signature": False})["jti"])


@dataclass
class Authorized:
    """Where the simulator sent the browser back to, and the state cookie that browser holds (SPEC §21.1)."""

    callback: str
    urls: list[str]
    state_cookie: str

    def browser(self) -> dict[str, str]:
        """The headers the browser that started the login sends to the callback."""
        return {"Cookie": f"synapse_oauth_state={self.state_cookie}"}


async def authorize(rt: Runtime, user_id: int, next_path: str | None = None) -> Authorized:
    """GET /api/auth/login, then the simulator's authorize page as `user_id`: the callback URL (and every URL)."""
    query = {} if next_path is None else {"next": next_path}
    login = await call("GET", base(rt) + "/api/auth/login", params=query)
    assert login.status == 302, login.body
    authorize_url = login.headers["Location"]
    approved = await call("GET", authorize_url + f"&as_user={user_id}")
    assert approved.status == 302, approved.body
    callback = approved.headers["Location"]
    urls = [base(rt) + "/api/auth/login", authorize_url, callback]
    return Authorized(callback, urls, login.cookies["synapse_oauth_state"].value)


async def login(rt: Runtime, user_id: int, next_path: str | None = None) -> Session:
    started = await authorize(rt, user_id, next_path)
    callback, urls = started.callback, started.urls
    done = await call("GET", callback, headers=started.browser())
    assert done.status == 303, done.body
    urls.append(done.headers["Location"])
    return Session(done.cookies["synapse_token"].value, done.cookies["synapse_csrf"].value, done, urls)


def state_of(callback_url: str) -> str:
    return parse_qs(urlsplit(callback_url).query)["state"][0]
