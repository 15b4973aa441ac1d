"""JWTs of SPEC §21.2: HS256 only, every claim required, 30 s leeway. Pure (no I/O), so attacks are unit-tested.

The algorithm list passed to the decoder is exactly `["HS256"]`: a token whose header names `none`, `HS512` or an
asymmetric algorithm is refused before its signature is even looked at, so the classic algorithm-confusion
attacks have nothing to work with. Kind-specific claims are checked after the signature: a user token carries
`candidates` (login) and `csrf` (login); a service token carries `guilds` and a `svc:` subject.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import jwt

ALGORITHM: Final = "HS256"
LEEWAY_SECONDS: Final = 30
SERVICE_MAX_TTL: Final = 3600
MAX_CANDIDATES: Final = 200
_COMMON: Final = ("iss", "aud", "sub", "iat", "exp", "jti", "kind", "name")

TokenKind = Literal["user", "service"]


class InvalidToken(Exception):
    """The token is not acceptable; `reason` is for the debug log only (never the token itself)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Claims:
    """A verified token's claims."""

    sub: str
    kind: TokenKind
    name: str
    jti: str
    iat: int
    exp: int
    csrf: str | None = None
    guilds: frozenset[int] = frozenset()
    candidates: tuple[int, ...] = field(default=())

    @property
    def user_id(self) -> int | None:
        """The Discord user id of a user token (None for service tokens)."""
        return int(self.sub) if self.kind == "user" else None


class TokenCodec:
    """Issues and verifies the API's JWTs with one secret, issuer, audience and lifetime."""

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def _encode(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def _base(self, sub: str, kind: TokenKind, name: str, now: int, ttl: int) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "iat": now,
            "exp": now + ttl,
            "jti": str(uuid.uuid4()),
            "kind": kind,
            "name": name,
        }

    def issue_login(self, user_id: int, name: str, candidates: Sequence[int], *, now: int) -> tuple[str, Claims]:
        """A login token: `csrf` for cookie mutations, `candidates` = the user's guilds the bot serves (≤ 200)."""
        claims = self._base(str(user_id), "user", name, now, self.ttl_seconds)
        claims["csrf"] = secrets.token_urlsafe(24)
        claims["candidates"] = [str(g) for g in list(dict.fromkeys(candidates))[:MAX_CANDIDATES]]
        token = self._encode(claims)
        return token, _claims(claims)

    def issue_user(self, user_id: int, name: str, guilds: Sequence[int], *, ttl: int, now: int) -> str:
        """A minted user token (CLI): still live-checked on every request; its candidates are the given guilds."""
        claims = self._base(str(user_id), "user", name, now, ttl)
        claims["candidates"] = [str(g) for g in guilds]
        return self._encode(claims)

    def issue_service(self, name: str, guilds: Sequence[int], *, ttl: int, now: int) -> str:
        """A service token for the listed guilds only (TTL ≤ 3600, SPEC §26)."""
        if not 1 <= ttl <= SERVICE_MAX_TTL:
            raise ValueError(f"a service token lives 1–{SERVICE_MAX_TTL} seconds")
        claims = self._base(f"svc:{name}", "service", name, now, ttl)
        claims["guilds"] = [str(g) for g in guilds]
        return self._encode(claims)

    def decode(self, token: str) -> Claims:
        """Verify signature, algorithm, `iss`, `aud`, `exp` (30 s leeway) and every claim; raise InvalidToken."""
        try:
            raw = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(_COMMON)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from None
        return _claims(raw)


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidToken(f"claim {key} is not a non-empty string")
    return value


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidToken(f"claim {key} is not an integer")
    return value


def _ids(raw: dict[str, Any], key: str) -> tuple[int, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or len(value) > MAX_CANDIDATES:
        raise InvalidToken(f"claim {key} is not a list of ids")
    try:
        return tuple(int(v) for v in value if isinstance(v, str) and v.isascii() and v.isdigit())
    except ValueError:
        raise InvalidToken(f"claim {key} is not a list of ids") from None


def _claims(raw: dict[str, Any]) -> Claims:
    kind = raw.get("kind")
    sub = _str(raw, "sub")
    jti = _str(raw, "jti")
    try:
        uuid.UUID(jti)
    except ValueError:
        raise InvalidToken("claim jti is not a UUID") from None
    common = {
        "sub": sub,
        "name": _str(raw, "name"),
        "jti": jti,
        "iat": _int(raw, "iat"),
        "exp": _int(raw, "exp"),
    }
    if kind == "user":
        if not (sub.isascii() and sub.isdigit()):
            raise InvalidToken("a user token's sub is a user id")
        csrf = raw.get("csrf")
        if csrf is not None and not isinstance(csrf, str):
            raise InvalidToken("claim csrf is not a string")
        candidates = _ids(raw, "candidates") if "candidates" in raw else ()
        return Claims(kind="user", csrf=csrf, candidates=candidates, **common)  # type: ignore[arg-type]
    if kind == "service":
        if not sub.startswith("svc:"):
            raise InvalidToken("a service token's sub starts with svc:")
        if "guilds" not in raw:
            raise InvalidToken("a service token lists its guilds")
        return Claims(kind="service", guilds=frozenset(_ids(raw, "guilds")), **common)  # type: ignore[arg-type]
    raise InvalidToken("claim kind is neither user nor service")
