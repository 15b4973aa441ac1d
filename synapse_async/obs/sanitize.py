"""Pure helpers that make untrusted values safe to log (SPEC §24.3, P5; technical debt item 9).

Log lines are read by people in terminals and by machines that split on line breaks. User-supplied text
(display names, reasons, search terms, achievement names) can carry characters that forge extra lines (newline,
carriage return, U+2028/U+2029, NEL), rewrite a terminal (ANSI escapes) or visually reorder a line (bidi
overrides). Such characters are replaced by a visible `\\uXXXX` escape, so the log shows exactly what the user sent
without letting it act on the reader. Everything else (emoji, accents, CJK, ZWJ sequences) is kept, because
escaping legitimate names would make logs useless to the people who moderate those names.

A second concern is P5 ("never logged: message content, tokens, secrets, OAuth codes, cookies, Authorization
headers"). Key names catch the honest cases (`token=...`); value patterns catch secrets that leak through
free text such as exception messages and URLs.

Nothing here depends on structlog, so these functions are also usable for embeds, audit reasons and CLI output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

__all__ = [
    "CONTENT_KEYS",
    "ELLIPSIS",
    "MASK",
    "USER_TEXT_KEYS",
    "cap_long_text",
    "escape_unsafe",
    "is_content_key",
    "is_secret_key",
    "redact_value",
    "safe_text",
    "scrub_secrets",
]

ELLIPSIS: Final = "…"
MASK: Final = "***"

# Characters that must never reach a log reader raw:
# - Cc: C0 controls (incl. \t \n \r ESC), DEL and the C1 controls (incl. NEL U+0085 and CSI U+009B, which some
#   terminals honour like ESC [);
# - U+2028/U+2029: line/paragraph separators, treated as line breaks by JavaScript log viewers and editors;
# - bidi marks, embeddings, overrides and isolates ("Trojan Source"): they reorder how the rest of the line looks;
# - lone surrogates (Cs): not encodable as UTF-8, they would break the "UTF-8 end to end" guarantee.
_UNSAFE_CLASS: Final = "\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_RE: Final = re.compile(f"[{_UNSAFE_CLASS}]")

# Keys whose values are user-supplied text by convention in this code base (SPEC §24.3).
USER_TEXT_KEYS: Final = frozenset(
    {"display_name", "name", "username", "reason", "q", "query", "achievement_name", "user_text"}
)

# Message content is never logged (P5), so these keys are dropped rather than masked: even "***" next to
# `content` would tempt someone to "just log it at DEBUG".
CONTENT_KEYS: Final = frozenset({"content", "message_content", "msg_content", "messagecontent"})

# Substrings that mark a key as secret wherever they appear (`client_secret`, `Set-Cookie`, `access_token`,
# `X-CSRF-Token`, `db_password`). Deliberately not "auth" alone (author_id) and not "code" alone (status_code).
_SECRET_FRAGMENTS: Final = (
    "token",
    "authorization",
    "cookie",
    "secret",
    "password",
    "passwd",
    "csrf",
    "api_key",
    "apikey",
    "private_key",
)
# OAuth authorization codes: only these exact keys, because `*_code` is usually an HTTP or exit status.
_CODE_KEYS: Final = frozenset({"code", "oauth_code", "auth_code", "grant_code"})

# Secrets recognised inside free text (exception messages, URLs, third-party log messages):
# - "Bearer xxx" credentials as they appear in an Authorization header (OAuth access tokens);
# - three dot-separated base64url segments: JWTs and Discord bot tokens (so "Bot <token>" is covered too, without
#   masking ordinary phrases such as "Bot connected");
# - the password part of a URL such as postgresql://user:password@host/db.
_BEARER_RE: Final = re.compile(r"\b(Bearer)(\s+)[A-Za-z0-9._~+/=-]{16,}", re.IGNORECASE)
_DOTTED_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{16,}")
_URL_PASSWORD_RE: Final = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+@")
# ... and a password given as a URL query parameter (`postgresql://host/db?password=...`).
_QUERY_PASSWORD_RE: Final = re.compile(r"(?i)([?&](?:ssl)?password=)[^&#\s]+")


def _escape_char(ch: str) -> str:
    return f"\\u{ord(ch):04x}"


def _escape_match(match: re.Match[str]) -> str:
    return _escape_char(match.group())


def escape_unsafe(text: str) -> str:
    """Replace every unsafe character (see module docstring) by `\\uXXXX`; no length cap.

    Used where the whole value must survive (e.g. tracebacks) but must still not act on the reader.
    """
    return _UNSAFE_RE.sub(_escape_match, text)


def safe_text(value: object, limit: int = 100) -> str:
    """Escape user-supplied text for logs and cap it to `limit` code points plus "…".

    Control characters (Cc, incl. \\n \\r \\t ESC), U+2028/U+2029, bidi marks/overrides/isolates and lone
    surrogates become `\\uXXXX`, so a name cannot start a fake log line, colour a terminal or reverse the rest of a
    line. The cap applies to the *escaped* text, because that is what costs space in the log; it never cuts an
    escape sequence in half (a half escape would be misread as a different character). Printable Unicode,
    including emoji and the zero-width joiners inside emoji sequences, is kept as is.

    Non-string values are converted with `str()` first, so callers can pass whatever they have.
    """
    if limit < 0:
        raise ValueError("limit must be >= 0")
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        escaped = escape_unsafe(text)
        if len(escaped) <= limit:
            return escaped
    # Every input code point becomes at least one output code point, so the first `limit` input characters
    # always contain the whole capped result: the work is O(limit) even for megabyte inputs.
    pieces: list[str] = []
    used = 0
    for ch in text[:limit]:
        piece = _escape_char(ch) if _UNSAFE_RE.match(ch) else ch
        if used + len(piece) > limit:
            break
        pieces.append(piece)
        used += len(piece)
    return "".join(pieces) + ELLIPSIS


def cap_long_text(text: str, limit: int) -> str:
    """Keep the head and the tail of a long, trusted multi-line text (a traceback) within about `limit` chars.

    Tracebacks are most useful at both ends (where it started, what finally failed), so the middle is elided
    instead of the end. Unsafe characters are escaped like in `safe_text`, except newlines, which a traceback
    needs and which the JSON renderer escapes anyway.
    """
    if len(text) > limit:
        half = max(limit // 2, 1)
        elided = len(text) - 2 * half
        text = f"{text[:half]}\n… [{elided} characters elided] …\n{text[-half:]}"
    return "\n".join(escape_unsafe(line) for line in text.split("\n"))


def _normalise_key(key: str) -> str:
    return key.lower().replace("-", "_")


def is_secret_key(key: str) -> bool:
    """True when a key's value must be masked: tokens, secrets, passwords, cookies, Authorization, OAuth codes.

    Matching is by fragment so that variants (`access_token`, `Set-Cookie`, `DISCORD_CLIENT_SECRET`) are caught
    without listing each one; "code" is matched only exactly because `status_code` must stay visible.
    """
    norm = _normalise_key(key)
    return norm in _CODE_KEYS or any(fragment in norm for fragment in _SECRET_FRAGMENTS)


def is_content_key(key: str) -> bool:
    """True for keys that carry Discord message content, which is never logged (P5)."""
    norm = _normalise_key(key)
    return norm in CONTENT_KEYS or norm.endswith("_content")


def scrub_secrets(text: str) -> str:
    """Mask credentials recognisable by their shape inside free text.

    Key-based masking cannot see a token quoted in an exception message or a password inside a database URL, so
    every logged string passes through here as a second line of defence.
    """
    if "." in text:
        text = _DOTTED_TOKEN_RE.sub(MASK, text)
    if "://" in text:
        text = _URL_PASSWORD_RE.sub(rf"\g<1>{MASK}@", text)
        text = _QUERY_PASSWORD_RE.sub(rf"\g<1>{MASK}", text)
    return _BEARER_RE.sub(rf"\g<1>\g<2>{MASK}", text)


_MAX_DEPTH: Final = 6


def redact_value(value: object, _depth: int = 0) -> object:
    """Return `value` with secrets masked and content dropped, recursing into mappings and sequences.

    Headers and payloads are often logged as dicts (`headers={"Authorization": ...}`), so key rules apply at
    every level, not only to top-level keys. Containers are copied, never mutated, because they may be the
    caller's live objects. Recursion stops at a small depth; deeper values are masked rather than trusted.
    """
    if isinstance(value, str):
        return scrub_secrets(value)
    if _depth >= _MAX_DEPTH and isinstance(value, Mapping | list | tuple | set | frozenset):
        return MASK
    if isinstance(value, Mapping):
        out: dict[object, object] = {}
        for key, item in value.items():
            if isinstance(key, str):
                if is_content_key(key):
                    continue
                if is_secret_key(key):
                    out[key] = MASK
                    continue
            out[key] = redact_value(item, _depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [redact_value(item, _depth + 1) for item in value]
    return value
