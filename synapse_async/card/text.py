"""One line of card text in mixed scripts: split into runs by font, measured, cut with "…", drawn.

A line is cut into grapheme clusters (so an emoji ZWJ sequence or a letter with its marks is never split), each
cluster gets its font from the `FontBook`, and neighbouring clusters with the same font form a run that is shaped
as a whole. With Pillow's raqm layout a run is shaped and reordered by HarfBuzz/FriBiDi (Arabic joins, Hebrew and
Arabic read right to left); the runs themselves are placed right to left when the line's first strong character
is right-to-left. Without raqm (basic layout) the characters of a right-to-left run are reversed here so the
reading order is still right, but Arabic letters stay in their isolated forms (no joining) and combining marks
are not positioned.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

import regex
from PIL import Image, ImageDraw, ImageFont

from synapse_async.card.fonts import COLOR_EMOJI_SIZE, RAQM, FontBook, FontFace

ELLIPSIS: Final = "…"
_CLUSTERS: Final = regex.compile(r"\X")

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def clusters(text: str) -> list[str]:
    return list(_CLUSTERS.findall(text))


def _rtl(cluster: str) -> bool | None:
    """True/False for a cluster starting with a strong right-to-left/left-to-right character, else None."""
    kind = unicodedata.bidirectional(cluster[0])
    if kind in ("R", "AL"):
        return True
    if kind == "L":
        return False
    return None


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    face: FontFace | None
    rtl: bool
    color: bool


def runs(book: FontBook, parts: list[str]) -> list[Run]:
    """Consecutive clusters with the same font, in logical order."""
    out: list[Run] = []
    for cluster in parts:
        direction = _rtl(cluster)
        face = book.face_for(cluster)
        if direction is None and out and out[-1].face != face and book.covers_all(out[-1].face, cluster):
            face = out[-1].face  # a space or digit keeps the running font, so a word run is shaped as a whole
        if out and out[-1].face == face and (direction is None or direction == out[-1].rtl):
            last = out[-1]
            out[-1] = Run(last.text + cluster, face, last.rtl, last.color)
        else:
            rtl = direction if direction is not None else (out[-1].rtl if out else False)
            out.append(Run(cluster, face, rtl, book.is_color(face)))
    return out


def visual_order(items: list[Run], base_rtl: bool) -> list[Run]:
    """Runs left to right on the page (the two-level case of the bidi algorithm's reordering): right-to-left
    runs reverse among themselves; in a right-to-left line the groups of each direction reverse as well."""
    groups: list[list[Run]] = []
    for run in items:
        if groups and groups[-1][0].rtl == run.rtl:
            groups[-1].append(run)
        else:
            groups.append([run])
    ordered = [list(reversed(group)) if group[0].rtl else group for group in groups]
    if base_rtl:
        ordered.reverse()
    return [run for group in ordered for run in group]


class Line:
    """A laid-out line of text at one size."""

    def __init__(self, book: FontBook, text: str, size: int) -> None:
        self.book = book
        self.size = size
        self.parts = clusters(text)
        self.runs = runs(book, self.parts)
        first_strong = next((d for d in (_rtl(c) for c in self.parts) if d is not None), False)
        self.rtl = first_strong

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def _font(self, run: Run) -> Font:
        return self.book.font(run.face, self.size)

    def _shown(self, run: Run) -> str:
        if run.rtl and not RAQM:
            return "".join(reversed(clusters(run.text)))
        return run.text

    def run_width(self, run: Run) -> float:
        font = self._font(run)
        width = float(font.getlength(self._shown(run)))
        return width * self.size / COLOR_EMOJI_SIZE if run.color else width

    @property
    def width(self) -> float:
        return sum(self.run_width(run) for run in self.runs)

    def fit(self, max_width: float) -> Line:
        """The line itself, or the longest prefix of whole clusters plus "…" that fits `max_width`."""
        if self.width <= max_width:
            return self
        low, high = 0, len(self.parts)  # the longest fitting prefix length lies in [low, high)
        while low < high - 1:
            middle = (low + high) // 2
            if Line(self.book, "".join(self.parts[:middle]).rstrip() + ELLIPSIS, self.size).width <= max_width:
                low = middle
            else:
                high = middle
        return Line(self.book, "".join(self.parts[:low]).rstrip() + ELLIPSIS, self.size)

    def draw(self, image: Image.Image, x: float, baseline: float, fill: tuple[int, int, int]) -> None:
        """Draw with the left edge at `x` and the baseline at `baseline`."""
        draw = ImageDraw.Draw(image)
        placed = visual_order(self.runs, self.rtl)
        for run in placed:
            width = self.run_width(run)
            if run.color:
                self._draw_emoji(image, run, x, baseline)
            else:
                draw.text((x, baseline), self._shown(run), font=self._font(run), fill=fill, anchor="ls")
            x += width

    def _draw_emoji(self, image: Image.Image, run: Run, x: float, baseline: float) -> None:
        """Colour glyphs exist at one bitmap size: drawn at it on their own layer, scaled down and composited."""
        font = self._font(run)
        left, top, right, bottom = font.getbbox(run.text, anchor="ls")
        if right <= left or bottom <= top:
            return
        layer = Image.new("RGBA", (int(right - left), int(bottom - top)), (0, 0, 0, 0))
        ImageDraw.Draw(layer).text((-left, -top), run.text, font=font, embedded_color=True, anchor="ls")
        scale = self.size / COLOR_EMOJI_SIZE
        size = (max(1, round(layer.width * scale)), max(1, round(layer.height * scale)))
        scaled = layer.resize(size, Image.Resampling.LANCZOS)
        image.alpha_composite(scaled, (round(x + left * scale), round(baseline + top * scale)))
