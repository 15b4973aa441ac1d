"""Font fallback per character for the rank card (SPEC §29): which installed font draws each grapheme cluster.

No single font covers Latin, Greek, Cyrillic, Arabic, Hebrew, CJK and colour emoji, so the card keeps an ordered
list of font files (the `CARD_FONT_DIRS` first, then a preferred Noto set, then everything else found on the
system) and gives each cluster to the first font whose character map holds all of its characters. Emoji clusters
(emoji presentation, VS16 or a ZWJ sequence) try the colour fonts first, so "❤️" is a red heart rather than a
text glyph. A cluster no font covers gets Pillow's default font: a box at worst, never a crash.

Coverage comes from the fonts' own `cmap` tables, parsed here (formats 4 and 12) and only when needed: a font
further down the list is opened the first time a character is not covered above it. The only I/O is reading font
files, which are static assets; no database or network. Pillow font objects are not safe to share between
threads, so each render thread keeps its own (`FontBook.font`).
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import regex
from PIL import ImageFont, features

SYSTEM_FONT_DIRS: Final = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_SUFFIXES: Final = (".ttf", ".otf", ".ttc")
COLOR_EMOJI_SIZE: Final = 109
"""Noto Color Emoji is a bitmap font with one strike: it loads at this size only and is scaled when drawn."""

# File names tried first, in this order (the rest follow in name order): the broad Latin/Greek/Cyrillic face,
# then the scripts the card promises, then a last broad face.
PREFERRED: Final = (
    "NotoSans-Regular.ttf",
    "NotoSansArabic-Regular.ttf",
    "NotoNaskhArabic-Regular.ttf",
    "NotoSansHebrew-Regular.ttf",
    "NotoSansCJK-Regular.ttc",
    "NotoSansCJKsc-Regular.otf",
    "NotoColorEmoji.ttf",
    "NotoSansSymbols2-Regular.ttf",
    "NotoSansSymbols-Regular.ttf",
    "DejaVuSans.ttf",
)
_STYLE_WORDS: Final = ("Bold", "Italic", "Light", "Thin", "Black", "Medium", "Condensed", "Semi", "Extra", "Mono")
_EMOJI_CLUSTER: Final = regex.compile(r"\p{Emoji_Presentation}|\uFE0F|\u200D")
_IGNORED: Final = frozenset("\u200d\ufe0e\ufe0f\u200c\u200e\u200f")
"""Joiners, variation selectors and direction marks: shaped by the font's layout, not looked up in its map."""

RAQM: Final = bool(features.check("raqm"))
LAYOUT: Final = ImageFont.Layout.RAQM if RAQM else ImageFont.Layout.BASIC


@dataclass(frozen=True, slots=True)
class FontFace:
    """One face of one font file (a `.ttc` holds several)."""

    path: str
    index: int = 0

    @property
    def name(self) -> str:
        return Path(self.path).name + (f"#{self.index}" if self.index else "")


@dataclass(slots=True)
class _Entry:
    face: FontFace
    color: bool = False
    _ranges: tuple[list[int], list[int]] | None = field(default=None)

    def ranges(self) -> tuple[list[int], list[int]]:
        if self._ranges is None:
            try:
                self._ranges = read_cmap_ranges(self.face.path, self.face.index)
            except (OSError, ValueError, struct.error):
                self._ranges = ([], [])  # an unreadable font covers nothing
        return self._ranges

    def covers(self, code: int) -> bool:
        starts, ends = self.ranges()
        i = bisect.bisect_right(starts, code) - 1
        return i >= 0 and code <= ends[i]


def _u16(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">H", data, at)[0])


def _u32(data: bytes, at: int) -> int:
    return int(struct.unpack_from(">I", data, at)[0])


def read_cmap_ranges(path: str, index: int = 0) -> tuple[list[int], list[int]]:
    """The code point ranges (sorted starts, ends) a font face maps to a glyph, from its `cmap` table."""
    with open(path, "rb") as handle:
        head = handle.read(12)
        base = 0
        if head[:4] == b"ttcf":
            handle.seek(12 + 4 * index)
            base = _u32(handle.read(4), 0)
            handle.seek(base)
            head = handle.read(12)
        tables = _u16(head, 4)
        directory = handle.read(16 * tables)
        for i in range(tables):
            if directory[16 * i : 16 * i + 4] == b"cmap":
                offset, length = _u32(directory, 16 * i + 8), _u32(directory, 16 * i + 12)
                handle.seek(offset)
                return _parse_cmap(handle.read(length))
    raise ValueError(f"{path}: no cmap table")


def _parse_cmap(cmap: bytes) -> tuple[list[int], list[int]]:
    subtables: dict[int, int] = {}  # format → offset (the best Unicode one of each format)
    for i in range(_u16(cmap, 2)):
        platform, encoding, offset = struct.unpack_from(">HHI", cmap, 4 + 8 * i)
        if platform == 0 or (platform == 3 and encoding in (1, 10)):
            subtables.setdefault(_u16(cmap, offset), offset)
    pairs: list[tuple[int, int]] = []
    if 12 in subtables:
        at = subtables[12]
        for g in range(_u32(cmap, at + 12)):
            start, end, _glyph = struct.unpack_from(">III", cmap, at + 16 + 12 * g)
            pairs.append((start, end))
    elif 4 in subtables:
        pairs = _format4(cmap, subtables[4])
    pairs.sort()
    merged: list[list[int]] = []
    for start, end in pairs:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [s for s, _ in merged], [e for _, e in merged]


def _format4(cmap: bytes, at: int) -> list[tuple[int, int]]:
    """Format 4 segments, dropping code points whose glyph is 0 (.notdef) where the table says so."""
    segs = _u16(cmap, at + 6) // 2
    ends_at = at + 14
    starts_at = ends_at + 2 * segs + 2
    deltas_at = starts_at + 2 * segs
    offsets_at = deltas_at + 2 * segs
    pairs: list[tuple[int, int]] = []
    for s in range(segs):
        start, end = _u16(cmap, starts_at + 2 * s), _u16(cmap, ends_at + 2 * s)
        if start == 0xFFFF:
            continue
        delta, range_offset = _u16(cmap, deltas_at + 2 * s), _u16(cmap, offsets_at + 2 * s)
        if range_offset == 0:
            pairs.append((start, end))
            continue
        run: int | None = None
        for code in range(start, end + 1):
            glyph_at = offsets_at + 2 * s + range_offset + 2 * (code - start)
            glyph = _u16(cmap, glyph_at) if glyph_at + 2 <= len(cmap) else 0
            if glyph and (glyph + delta) & 0xFFFF:
                run = code if run is None else run
            elif run is not None:
                pairs.append((run, code - 1))
                run = None
        if run is not None:
            pairs.append((run, end))
    return pairs


def discover(extra_dirs: Iterable[str] = (), *, system: bool = True) -> list[FontFace]:
    """Font faces to try, best first: `extra_dirs` (`CARD_FONT_DIRS`) in order, then `PREFERRED` by name, then
    the other regular-weight faces, then the styled ones (bold, italic…), each group in name order."""
    extra_list = list(extra_dirs)
    dirs = [*extra_list, *(SYSTEM_FONT_DIRS if system else ())]
    seen: set[str] = set()
    extra: list[str] = []
    found: list[str] = []
    for position, directory in enumerate(dirs):
        root = Path(os.path.expanduser(directory))
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            real = str(path.resolve())
            if path.suffix.lower() in FONT_SUFFIXES and real not in seen and path.is_file():
                seen.add(real)
                (extra if position < len(extra_list) else found).append(str(path))
    rank = {name: i for i, name in enumerate(PREFERRED)}

    def order(path: str) -> tuple[int, int, str]:
        name = Path(path).name
        if name in rank:
            return (0, rank[name], name)
        return (1 if not any(word in name for word in _STYLE_WORDS) else 2, 0, name)

    # Of a collection (.ttc) only the first face is used: the CJK collections' faces cover the same characters.
    return [FontFace(path) for path in [*extra, *sorted(found, key=order)]]


def _is_color_name(path: str) -> bool:
    name = Path(path).name.lower()
    return "emoji" in name and "color" in name


class FontBook:
    """The fallback order and, per render thread, the loaded fonts. Thread-safe: choices are memoised in a dict
    (a racing double computation gives the same answer), font objects are per thread."""

    def __init__(self, faces: Sequence[FontFace]) -> None:
        self._entries = [_Entry(face, color=_is_color_name(face.path)) for face in faces]
        self._color = [e for e in self._entries if e.color]
        self._choices: dict[str, FontFace | None] = {}
        self._local = threading.local()
        self._lock = threading.Lock()  # cmap parsing of one font happens once

    @classmethod
    def from_system(cls, extra_dirs: Iterable[str] = ()) -> FontBook:
        return cls(discover(extra_dirs))

    @property
    def faces(self) -> tuple[FontFace, ...]:
        return tuple(e.face for e in self._entries)

    def covers(self, face: FontFace, char: str) -> bool:
        """Whether `face`'s character map holds `char` (for the tests: no tofu)."""
        for entry in self._entries:
            if entry.face == face:
                with self._lock:
                    return entry.covers(ord(char))
        return False

    def covers_all(self, face: FontFace | None, cluster: str) -> bool:
        if face is None:
            return False
        codes = [ord(c) for c in cluster if c not in _IGNORED]
        for entry in self._entries:
            if entry.face == face:
                with self._lock:
                    return all(entry.covers(code) for code in codes)
        return False

    def face_for(self, cluster: str) -> FontFace | None:
        """The first face covering every character of a grapheme cluster (emoji clusters: colour faces first), or
        the first covering its first character, or None: Pillow's default font."""
        choice = self._choices.get(cluster, ...)
        if choice is not ...:
            return choice
        codes = [ord(c) for c in cluster if c not in _IGNORED] or [ord(cluster[0])]
        order = self._entries
        if _EMOJI_CLUSTER.search(cluster):
            order = [*self._color, *self._entries]
        found: FontFace | None = None
        with self._lock:
            for entry in order:
                if all(entry.covers(code) for code in codes):
                    found = entry.face
                    break
            else:
                found = next((e.face for e in order if e.covers(codes[0])), None)
        if len(self._choices) < 100_000:
            self._choices[cluster] = found
        return found

    def is_color(self, face: FontFace | None) -> bool:
        return face is not None and any(e.face == face and e.color for e in self._color)

    def font(self, face: FontFace | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        """The calling thread's font object for `face` at `size` (colour faces at their one bitmap size)."""
        cache: dict[tuple[FontFace | None, int], ImageFont.FreeTypeFont | ImageFont.ImageFont]
        cache = self._local.__dict__.setdefault("fonts", {})
        if self.is_color(face):
            size = COLOR_EMOJI_SIZE
        key = (face, size)
        font = cache.get(key)
        if font is None:
            if face is None:
                font = ImageFont.load_default(size)
            else:
                try:
                    font = ImageFont.truetype(face.path, size, index=face.index, layout_engine=LAYOUT)
                except OSError:
                    font = ImageFont.load_default(size)
            cache[key] = font
        return font
