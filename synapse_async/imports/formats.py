"""Member import documents (SPEC §20.1): detect the shape, validate every row, report bad rows by index.

Pure: bytes in, `ParsedImport` out, no I/O and no clock, so the whole format zoo is unit-tested without a database
and the job can run it in a worker thread (a 20 MB document must not hold the event loop).

Accepted shapes (detected, never declared by the caller):

- our own export: `{"format": "synapse-members", "version": 1, "members": [{"user_id", "xp"?, "gold"?,
  "lifetime_stars"?, "github_username"?, "achievements"?, "left"?}]}` — every field but `user_id` optional, since
  "absent fields stay unchanged";
- a bare array `[{"id" | "user_id", "xp", "gold"?}]` (also Polaris' array export);
- MEE6's leaderboard page `{"players": [{"id", "xp", ...}]}`;
- Polaris `{"users": {"<id>": {"xp": n}}}`;
- Lurkr `{"levels": [{"userId", "xp", ...}]}`;
- Amari `{"data": [{"id", "exp", ...}]}`;
- CSV with a header row naming a user-id column and an XP column (optionally gold), case-insensitive.

Levels in the input are read but only used with `levels=keep` (the default for other bots' exports, see
`plan.kept_xp`); with `levels=recompute` XP is what carries over and the level follows from this guild's curve. A row's
`index` is its 0-based position among the document's entries (for CSV: among the data rows after the header,
blank lines not counted). Problems with the document as a whole (not JSON/CSV, unknown shape, too large, too many
entries) raise `ImportFormatError`; problems with single rows are collected in `ParsedImport.invalid`.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast

from synapse_async.domain.github import github_problem

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_AMOUNT",
    "MAX_ENTRIES",
    "DocumentTooLarge",
    "ImportEntry",
    "ImportFormatError",
    "InvalidRow",
    "ParsedImport",
    "SourceFormat",
    "decode_text",
    "entry_chunks",
    "parse_document",
    "parse_text",
    "render_document",
]

FORMAT_NAME: Final = "synapse-members"
FORMAT_VERSION: Final = 1
MAX_ENTRIES: Final = 200_000
"""Entries per document (SPEC §20.1)."""
MAX_AMOUNT: Final = 10**15
"""Largest XP, gold or star amount of one row: far beyond any real balance, far below BIGINT overflow when added."""
_MAX_SNOWFLAKE: Final = 2**63 - 1
_NAME_MAX: Final = 100

SourceFormat = Literal["synapse-members", "array", "mee6", "polaris", "lurkr", "amari", "csv"]

# CSV header names, compared after lower-casing and dropping everything but letters and digits.
_CSV_ID: Final = frozenset({"id", "userid", "memberid", "discordid", "discorduserid", "uid", "user"})
_CSV_XP: Final = frozenset({"xp", "exp", "experience", "totalxp", "totalexp", "points"})
_CSV_GOLD: Final = frozenset({"gold", "coins"})
_CSV_LEVEL: Final = frozenset({"level", "lvl"})
_DIGITS = re.compile(r"[0-9]{1,19}")


class ImportFormatError(ValueError):
    """The document as a whole cannot be imported; `field` names where (for a 400 with field details)."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field


class DocumentTooLarge(ImportFormatError):
    """More bytes than `IMPORT_MAX_BYTES` (413)."""


_UNSET: Final = object()


@dataclass(frozen=True, slots=True)
class ImportEntry:
    """One member to import. None means "absent: leave unchanged" (for `github_username`: `github_set` False)."""

    index: int
    user_id: int
    xp: int | None = None
    gold: int | None = None
    lifetime_stars: int | None = None
    github_set: bool = False
    github_username: str | None = None
    achievements: tuple[str, ...] = ()
    left: bool | None = None
    source_level: int | None = None
    """The level the other bot showed (`levels=keep`); None when the row gives none."""
    source_progress: tuple[int, int] | None = None
    """(XP into that level, XP the level spans) at the other bot, when known: the fraction `levels=keep` keeps."""


@dataclass(frozen=True, slots=True)
class InvalidRow:
    index: int
    reason: str

    def as_json(self) -> dict[str, object]:
        return {"index": self.index, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class ParsedImport:
    format: SourceFormat
    entries: tuple[ImportEntry, ...]
    invalid: tuple[InvalidRow, ...] = field(default=())
    valid: int = -1
    """Valid entries; equals `len(entries)` unless parsed with `keep=False` (then `entries` is empty)."""

    @property
    def count(self) -> int:
        return len(self.entries) if self.valid < 0 else self.valid


class _RowError(Exception):
    """One row's problem; becomes an `InvalidRow`."""


# --- field readers -----------------------------------------------------------------------------------------------


def _snowflake(value: object, name: str) -> int:
    """An id as JSON string of digits or JSON integer (bots differ); anything else is invalid."""
    if isinstance(value, bool):
        raise _RowError(f"{name}: must be a user id")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise _RowError(f"{name}: must be a user id (digits)")
    if not 0 < number <= _MAX_SNOWFLAKE:
        raise _RowError(f"{name}: not a valid user id")
    return number


def _amount(value: object, name: str, *, text: bool = False) -> int:
    """A non-negative integer; strings only in CSV (JSON numbers as strings are a type error, SPEC §12.2 style)."""
    if text and isinstance(value, str):
        stripped = value.strip()
        if not _DIGITS.fullmatch(stripped):
            raise _RowError(f"{name}: must be a non-negative integer")
        value = int(stripped)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _RowError(f"{name}: must be an integer")
    if not 0 <= value <= MAX_AMOUNT:
        raise _RowError(f"{name}: must be between 0 and {MAX_AMOUNT}")
    return value


def _optional_amount(row: Mapping[str, Any], key: str) -> int | None:
    return None if row.get(key) is None else _amount(row[key], key)


def _pick(row: Mapping[str, Any], keys: Sequence[str]) -> tuple[str, object]:
    for key in keys:
        if key in row:
            return key, row[key]
    raise _RowError(f"{' or '.join(keys)}: required")


def _object(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _RowError("row: must be an object")
    return value


# --- row readers per shape ---------------------------------------------------------------------------------------

RowReader = Callable[[int, Any], ImportEntry]


_MAX_SOURCE_LEVEL: Final = 100_000


def _source_level(row: Mapping[str, Any]) -> int | None:
    """The other bot's level (0-based in MEE6), if the row has one; an invalid one is a row error."""
    if row.get("level") is None:
        return None
    value = row["level"]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_SOURCE_LEVEL:
        raise _RowError(f"level: must be an integer between 0 and {_MAX_SOURCE_LEVEL}")
    return value


def _mee6_progress(row: Mapping[str, Any], level: int | None, xp: int) -> tuple[int, int] | None:
    """MEE6's `detailed_xp: [into the level, the level's span, total]`, else its public curve (5L² + 50L + 100 to
    leave level L, from level 0) applied to the total XP."""
    detailed = row.get("detailed_xp")
    if (
        isinstance(detailed, list)
        and len(detailed) >= 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in detailed[:2])
        and 0 <= detailed[0] < detailed[1]
    ):
        return detailed[0], detailed[1]
    if level is None:
        return None
    start = sum(5 * n * n + 50 * n + 100 for n in range(min(level, _MAX_SOURCE_LEVEL)))
    span = 5 * level * level + 50 * level + 100
    return (xp - start, span) if 0 <= xp - start < span else None


def _foreign(id_keys: Sequence[str], xp_keys: Sequence[str], *, gold: bool = False, mee6: bool = False) -> RowReader:
    """A reader for other bots' rows: an id, an XP amount, optionally gold, and the bot's level (used only with
    `levels=keep`); every other field ignored."""

    def read(index: int, value: object) -> ImportEntry:
        row = _object(value)
        id_key, raw_id = _pick(row, id_keys)
        xp_key, raw_xp = _pick(row, xp_keys)
        xp = _amount(raw_xp, xp_key)
        level = _source_level(row)
        return ImportEntry(
            index,
            _snowflake(raw_id, id_key),
            xp=xp,
            gold=_optional_amount(row, "gold") if gold else None,
            source_level=level,
            source_progress=_mee6_progress(row, level, xp) if mee6 else None,
        )

    return read


def _own_row(index: int, value: object) -> ImportEntry:
    row = _object(value)
    user_id = _snowflake(_pick(row, ("user_id",))[1], "user_id")
    github = row.get("github_username", _UNSET)
    if github not in (_UNSET, None):
        if not isinstance(github, str):
            raise _RowError("github_username: must be null or a GitHub username")
        if (problem := github_problem(github)) is not None:  # the `/link-github` rule, checked before any write
            raise _RowError(f"github_username: {problem}")
    achievements = row.get("achievements", [])
    if not isinstance(achievements, list) or not all(
        isinstance(a, str) and 1 <= len(a) <= _NAME_MAX for a in achievements
    ):
        raise _RowError(f"achievements: must be a list of template names (1–{_NAME_MAX} characters)")
    left = row.get("left")
    if left is not None and not isinstance(left, bool):
        raise _RowError("left: must be a boolean")
    return ImportEntry(
        index,
        user_id,
        xp=_optional_amount(row, "xp"),
        gold=_optional_amount(row, "gold"),
        lifetime_stars=_optional_amount(row, "lifetime_stars"),
        github_set=github is not _UNSET,
        github_username=github if isinstance(github, str) else None,
        achievements=tuple(dict.fromkeys(achievements)),
        left=left,
    )


_ARRAY = _foreign(("user_id", "id"), ("xp",), gold=True)
_MEE6 = _foreign(("id",), ("xp",), mee6=True)
_LURKR = _foreign(("userId",), ("xp",))
_AMARI = _foreign(("id",), ("exp",))


def _polaris_map(index: int, value: tuple[str, object]) -> ImportEntry:
    user_key, data = value  # the (key, value) pairs `_detect` makes of the `users` object
    row = _object(data)
    xp = _amount(_pick(row, ("xp",))[1], "xp")
    return ImportEntry(index, _snowflake(user_key, "id"), xp=xp, source_level=_source_level(row))


# --- document level ----------------------------------------------------------------------------------------------
#
# The document is never decoded as a whole: a 20 MiB JSON array of `{}` would be millions of dicts (hundreds of MB)
# before its length could be checked. JSON is walked one row at a time with the C decoder's `raw_decode`, CSV one
# line at a time, and `_read_all` stops at the first entry beyond `MAX_ENTRIES`. So memory is the text plus the
# compact `ImportEntry` tuple, whatever the document holds.


def _reject_constant(name: str) -> object:
    raise ImportFormatError(f"not valid JSON: {name} is not a JSON number")


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)
_WS: Final = re.compile(r"[ \t\n\r]*")


class _Json:
    """Incremental reading of one JSON text by character offset: single values, array items, object members.

    `items` and `members` are generators that leave the offset after the container's closing bracket in `end`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.end = 0

    def ws(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        assert match is not None  # `*` always matches
        return match.end()

    def value(self, pos: int) -> tuple[object, int]:
        try:
            return cast(tuple[object, int], _DECODER.raw_decode(self.text, pos))
        except ImportFormatError:
            raise
        except (ValueError, RecursionError) as exc:
            raise ImportFormatError(f"not valid JSON at character {pos}: {str(exc)[:200]}") from None

    def expect(self, pos: int, chars: str) -> str:
        found = self.text[pos : pos + 1]
        if not found or found not in chars:
            wanted = " or ".join(repr(c) for c in chars)
            raise ImportFormatError(f"not valid JSON at character {pos}: expected {wanted}")
        return found

    def items(self, pos: int) -> Iterator[object]:
        """The items of the array at `pos`, decoded one at a time."""
        self.expect(pos, "[")
        pos = self.ws(pos + 1)
        if self.text.startswith("]", pos):
            self.end = pos + 1
            return
        while True:
            item, pos = self.value(pos)
            yield item
            pos = self.ws(pos)
            if self.expect(pos, ",]") == "]":
                self.end = pos + 1
                return
            pos = self.ws(pos + 1)

    def members(self, pos: int, *, decode: bool) -> Iterator[tuple[str, object, int]]:
        """(key, value, value offset) of the object at `pos`. With `decode` False, values are skipped (walked item
        by item if they are containers) and given as None: a huge value under an unknown key is never built."""
        self.expect(pos, "{")
        pos = self.ws(pos + 1)
        if self.text.startswith("}", pos):
            self.end = pos + 1
            return
        while True:
            self.expect(pos, '"')
            key, pos = self.value(pos)
            pos = self.ws(pos)
            self.expect(pos, ":")
            start = self.ws(pos + 1)
            if decode:
                value, pos = self.value(start)
            else:
                value, pos = None, self.skip(start)
            yield cast(str, key), value, start
            pos = self.ws(pos)
            if self.expect(pos, ",}") == "}":
                self.end = pos + 1
                return
            pos = self.ws(pos + 1)

    def skip(self, pos: int) -> int:
        """The offset after the value at `pos`; containers are walked, never built, and hold ≤ `MAX_ENTRIES`."""
        first = self.text[pos : pos + 1]
        if first and first in "[{":
            inner = _Json(self.text)
            walk: Iterator[object] = inner.items(pos) if first == "[" else inner.members(pos, decode=False)
            for _ in _count(walk):  # the row limit holds during this first walk already
                pass
            return inner.end
        return self.value(pos)[1]

    def finish(self, pos: int) -> None:
        if self.ws(pos) != len(self.text):
            raise ImportFormatError(f"not valid JSON at character {self.ws(pos)}: extra data after the document")


def _count(items: Iterator[object]) -> Iterator[object]:
    """`items`, refusing the first one beyond `MAX_ENTRIES` (the limit holds while parsing, not after)."""
    for index, item in enumerate(items):
        if index >= MAX_ENTRIES:
            raise ImportFormatError(f"more than {MAX_ENTRIES} entries; at most {MAX_ENTRIES} per import")
        yield item


def _rows_then_finish(reader: _Json, rows: Iterator[object]) -> Iterator[object]:
    yield from rows
    reader.finish(reader.end)


def _json_document(text: str, pos: int) -> tuple[SourceFormat, Iterator[object], RowReader]:
    """The shape of a JSON document at `pos`: (format, an iterator over its rows, how to read one).

    A bare array is read in one pass. An object is first walked once (top-level scalars kept, containers only
    counted) to learn its shape, whatever the order of its keys; then the rows are read from their array."""
    doc = _Json(text)
    if text[pos] == "[":
        return "array", _rows_then_finish(doc, doc.items(pos)), _ARRAY
    if text[pos] != "{":
        raise ImportFormatError("a JSON import must be an object or an array")
    scalars: dict[str, object] = {}
    containers: dict[str, tuple[str, int]] = {}
    for key, _, start in doc.members(pos, decode=False):
        first = text[start : start + 1]
        if first and first in "[{":
            containers[key] = ("array" if first == "[" else "object", start)
        else:
            scalars[key] = _Json(text).value(start)[0]
    doc.finish(doc.end)

    def array(key: str) -> Iterator[object] | None:
        kind, start = containers.get(key, ("", 0))
        return _Json(text).items(start) if kind == "array" else None

    if "format" in scalars or "format" in containers:
        if scalars.get("format") != FORMAT_NAME:
            raise ImportFormatError(f"unknown format (expected {FORMAT_NAME!r})", "format")
        version = scalars.get("version")
        if version != FORMAT_VERSION or isinstance(version, bool):
            raise ImportFormatError(f"unsupported version (expected {FORMAT_VERSION})", "version")
        members = array("members")
        if members is None:
            raise ImportFormatError("must be an array", "members")
        return "synapse-members", members, _own_row
    for key, name, reader in (("players", "mee6", _MEE6), ("levels", "lurkr", _LURKR), ("data", "amari", _AMARI)):
        rows = array(key)
        if rows is not None:
            return cast(SourceFormat, name), rows, reader
    kind, start = containers.get("users", ("", 0))
    if kind == "object":
        pairs = ((k, v) for k, v, _ in _Json(text).members(start, decode=True))
        return "polaris", pairs, _polaris_map
    if kind == "array":
        return "polaris", _Json(text).items(start), _ARRAY
    raise ImportFormatError(
        "unrecognised document: expected our export, a bare array, or a MEE6, Polaris, Lurkr or Amari export"
    )


def _header_key(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their endings, one at a time (a StringIO copy would cost 4 bytes a character)."""
    start, size = 0, len(text)
    while start < size:
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start : end + 1]
        start = end + 1


def _csv_rows(text: str) -> tuple[Iterator[object], RowReader]:
    """CSV with a header: the delimiter is the most frequent of `,` `;` tab on the header line."""
    first_line = text.split("\n", 1)[0] if len(text) < 65536 else text[:65536].split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(_lines(text), delimiter=delimiter)

    def rows() -> Iterator[list[str]]:
        try:
            for row in reader:
                if any(c.strip() for c in row):
                    yield row
        except csv.Error as exc:
            raise ImportFormatError(f"not valid CSV: {exc}") from None

    lines = rows()
    first = next(lines, None)
    if first is None:
        raise ImportFormatError("empty document")
    header = [_header_key(h) for h in first]

    def find(names: frozenset[str]) -> int | None:
        return next((i for i, key in enumerate(header) if key in names), None)

    def column(names: frozenset[str], what: str) -> int:
        found = find(names)
        if found is None:
            raise ImportFormatError(f"the CSV header names no {what} column (one of: {', '.join(sorted(names))})")
        return found

    id_col = column(_CSV_ID, "user id")
    xp_col = column(_CSV_XP, "XP")
    gold_col = find(_CSV_GOLD)
    level_col = find(_CSV_LEVEL)
    needed = max(c for c in (id_col, xp_col, gold_col, level_col) if c is not None)

    def read(index: int, cells: list[str]) -> ImportEntry:
        if len(cells) <= needed:
            raise _RowError(f"row: {len(cells)} columns, the header has {len(header)}")
        gold_cell = cells[gold_col].strip() if gold_col is not None else ""
        level_cell = cells[level_col].strip() if level_col is not None else ""
        level = _amount(level_cell, "level", text=True) if level_cell else None
        if level is not None and level > _MAX_SOURCE_LEVEL:
            raise _RowError(f"level: must be an integer between 0 and {_MAX_SOURCE_LEVEL}")
        return ImportEntry(
            index,
            _snowflake(cells[id_col], "user id"),  # fixed names: header text is the uploader's, kept out of logs
            xp=_amount(cells[xp_col], "xp", text=True),
            gold=_amount(gold_cell, "gold", text=True) if gold_cell else None,
            source_level=level,
        )

    return lines, read


def _read_all(
    rows: Iterator[object], reader: RowReader, *, keep: bool
) -> tuple[tuple[ImportEntry, ...], tuple[InvalidRow, ...], int]:
    entries: list[ImportEntry] = []
    invalid: list[InvalidRow] = []
    first_at: dict[int, int] = {}
    for index, row in enumerate(_count(rows)):
        try:
            entry = reader(index, row)
        except _RowError as exc:
            invalid.append(InvalidRow(index, str(exc)))
            continue
        seen = first_at.setdefault(entry.user_id, index)
        if seen != index:
            invalid.append(InvalidRow(index, f"user id {entry.user_id}: duplicate of row {seen}"))
            continue
        if keep:
            entries.append(entry)
    return tuple(entries), tuple(invalid), len(first_at)


def _rows(text: str) -> tuple[SourceFormat, Iterator[object], RowReader]:
    pos = _WS.match(text)
    start = pos.end() if pos is not None else 0
    if start == len(text):
        raise ImportFormatError("empty document")
    if text[start] in "[{":
        return _json_document(text, start)
    rows, reader = _csv_rows(text[start:] if start else text)
    return "csv", rows, reader


def decode_text(raw: bytes | bytearray, *, max_bytes: int) -> str:
    """The upload as text, with the limits checked before anything else: size (413), UTF-8 (a BOM is dropped), no
    NUL (a PostgreSQL text cannot hold it)."""
    if len(raw) > max_bytes:
        raise DocumentTooLarge(f"{len(raw)} bytes; at most {max_bytes} per import")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportFormatError("not UTF-8 text") from None
    if "\0" in text:
        raise ImportFormatError("contains NUL characters")
    return text


def parse_text(text: str, *, keep: bool = True) -> ParsedImport:
    """Detect and parse an import document already decoded by `decode_text`; see `parse_document`. With `keep`
    False only the counts and invalid rows are kept (validation without the entries' memory)."""
    fmt, rows, reader = _rows(text)
    entries, invalid, valid = _read_all(rows, reader, keep=keep)
    return ParsedImport(fmt, entries, invalid, valid)


def entry_chunks(text: str, size: int, skip: Collection[int] = ()) -> Iterator[list[ImportEntry]]:
    """The valid entries of a document already checked by `parse_text`, `size` at a time in document order,
    leaving out the rows at the indexes `skip` (its invalid and duplicate rows): a dry run plans chunk by chunk
    instead of holding every entry."""
    _, rows, reader = _rows(text)
    chunk: list[ImportEntry] = []
    for index, row in enumerate(_count(rows)):
        if index in skip:
            continue
        chunk.append(reader(index, row))
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def parse_document(raw: bytes, *, max_bytes: int) -> ParsedImport:
    """Detect and parse an import document (JSON or CSV, UTF-8 with or without BOM).

    Raises `DocumentTooLarge` beyond `max_bytes` and `ImportFormatError` for a document that cannot be imported at
    all (including more than `MAX_ENTRIES` entries, noticed at the first one too many); row problems (wrong types,
    out-of-range amounts, bad ids, invalid GitHub or achievement names, duplicate ids) are listed in `invalid` by
    index.
    """
    return parse_text(decode_text(raw, max_bytes=max_bytes))


def render_document(guild_id: int, exported_at: str, members: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Our own export document (SPEC §20.1) from member dicts in the document's field names; snowflakes as strings."""
    return {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "guild_id": str(guild_id),
        "exported_at": exported_at,
        "members": [dict(m, user_id=str(m["user_id"])) for m in members],
    }
