"""Conversions between the one `DATABASE_URL` form operators write and what each driver layer wants.

Operators configure a plain `postgresql://` URL. SQLAlchemy needs the `+asyncpg` dialect marker, while the raw
asyncpg connections (listener, tests) take the plain form. Keeping both conversions here means no other module
ever edits URL strings.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_PLAIN_SCHEMES = ("postgresql", "postgres")


def _scheme_and_rest(url: str) -> tuple[str, str]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("not a URL (missing '://')")
    return scheme.lower(), rest


def to_asyncpg_dsn(url: str) -> str:
    """Return the `postgresql://` form asyncpg.connect() accepts."""
    scheme, rest = _scheme_and_rest(url)
    if scheme not in (*_PLAIN_SCHEMES, "postgresql+asyncpg"):
        raise ValueError(f"unsupported scheme {scheme!r}")
    return f"postgresql://{rest}"


def to_sqlalchemy_url(url: str) -> str:
    """Return the `postgresql+asyncpg://` form for SQLAlchemy's async engine."""
    return "postgresql+asyncpg://" + _scheme_and_rest(to_asyncpg_dsn(url))[1]


def with_database(url: str, database: str) -> str:
    """Return `url` pointing at another database on the same server (used for per-test databases)."""
    parts = urlsplit(to_asyncpg_dsn(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def redact(url: str) -> str:
    """Mask the password of a URL for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
