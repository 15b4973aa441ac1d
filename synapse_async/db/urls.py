"""Conversions between the one `DATABASE_URL` form operators write and what each driver layer wants.

Operators configure a plain `postgresql://` URL. SQLAlchemy needs the `+asyncpg` dialect marker, while the raw
asyncpg connections (listener, tests) take the plain form. Keeping both conversions here means no other module
ever edits URL strings.
"""

from __future__ import annotations

import re
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


# libpq and asyncpg also take the password as a query parameter (`?password=…`, and `sslpassword` for the key).
_QUERY_PASSWORD_RE = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#]*")


def redact(url: str) -> str:
    """Mask the password of a URL for logs and error messages, in the user-info part and in the query."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # e.g. an invalid port: mask conservatively rather than fail while reporting the error
        return _QUERY_PASSWORD_RE.sub(r"\g<1>***", re.sub(r"(://[^/@:]*:)[^@/]*@", r"\g<1>***@", url))
    netloc = parts.netloc if password is None else parts.netloc.replace(f":{password}@", ":***@", 1)
    query = _QUERY_PASSWORD_RE.sub(r"\g<1>***", "?" + parts.query)[1:] if parts.query else parts.query
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
