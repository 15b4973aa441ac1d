"""The rank card of SPEC §29 as a pure function: a `CardData` in, PNG bytes out (934 × 282 px).

Nothing here reads the database or the network: the caller passes the member's figures and the avatar's bytes
(or None, then a disc in the accent colour stands in). It is CPU work of a few tens of milliseconds, so callers
run it in a thread pool, never on the event loop (`services/card.py`).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Final, Literal

from PIL import Image, ImageDraw, UnidentifiedImageError

from synapse_async.card.fonts import FontBook
from synapse_async.card.text import Line

WIDTH: Final = 934
HEIGHT: Final = 282
Theme = Literal["dark", "light"]
NEUTRAL_ACCENT: Final = "#5865f2"
_HEX: Final = re.compile(r"^#[0-9a-fA-F]{6}$")

# Layout (px). The name shares its row with the XP figures, right-aligned; it gets whatever width they leave.
AVATAR: Final = 200
AVATAR_X: Final = 40
AVATAR_Y: Final = (HEIGHT - AVATAR) // 2
TEXT_X: Final = AVATAR_X + AVATAR + 40
RIGHT: Final = WIDTH - 40
NAME_SIZE: Final = 44
HEADER_SIZE: Final = 30
DETAIL_SIZE: Final = 26
BAR_TOP: Final = 168
BAR_HEIGHT: Final = 36
GAP: Final = 24


@dataclass(frozen=True, slots=True)
class Palette:
    background: tuple[int, int, int]
    panel: tuple[int, int, int]
    text: tuple[int, int, int]
    muted: tuple[int, int, int]
    track: tuple[int, int, int]


PALETTES: Final[dict[str, Palette]] = {
    "dark": Palette((30, 31, 34), (43, 45, 49), (242, 243, 245), (181, 186, 193), (64, 66, 73)),
    "light": Palette((227, 229, 232), (255, 255, 255), (6, 6, 7), (78, 80, 88), (210, 212, 217)),
}


@dataclass(frozen=True, slots=True)
class CardData:
    """Everything the card shows. `rank` None: not ranked (0 XP). `accent` is `#rrggbb`."""

    display_name: str
    avatar: bytes | None
    level: int
    rank: int | None
    ranked_of: int
    xp_into_level: int
    xp_for_next_level: int
    season_stars: int
    gold: int
    accent: str = NEUTRAL_ACCENT
    theme: Theme = "dark"
    xp_name: str = "XP"
    stars_name: str = "Stars"
    gold_name: str = "Gold"


def parse_accent(value: str | None) -> tuple[int, int, int]:
    if value is None or not _HEX.match(value):
        value = NEUTRAL_ACCENT
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def number(value: int) -> str:
    return f"{value:,}"


@cache
def _avatar_mask() -> Image.Image:
    """A smooth circle: drawn at 4× and scaled down (anti-aliased edge). Read-only, shared by threads."""
    big = Image.new("L", (AVATAR * 4, AVATAR * 4), 0)
    ImageDraw.Draw(big).ellipse((0, 0, AVATAR * 4 - 1, AVATAR * 4 - 1), fill=255)
    return big.resize((AVATAR, AVATAR), Image.Resampling.LANCZOS)


@lru_cache(maxsize=64)
def _avatar(data: bytes | None, accent: tuple[int, int, int]) -> Image.Image:
    """The avatar decoded and scaled to the circle (kept for the next cards of the same avatar: read-only)."""
    if data is not None:
        try:
            with Image.open(io.BytesIO(data)) as source:
                source.seek(0)  # an animated avatar: its first frame
                return source.convert("RGBA").resize((AVATAR, AVATAR), Image.Resampling.LANCZOS)
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
            pass
    return Image.new("RGBA", (AVATAR, AVATAR), (*accent, 255))


def render(card: CardData, book: FontBook) -> bytes:
    """The card as PNG bytes (RGB, 934 × 282)."""
    palette = PALETTES.get(card.theme, PALETTES["dark"])
    accent = parse_accent(card.accent)
    image = Image.new("RGBA", (WIDTH, HEIGHT), (*palette.background, 255))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((12, 12, WIDTH - 13, HEIGHT - 13), radius=24, fill=palette.panel)

    # Avatar in a ring of the accent colour.
    ring = 6
    draw.ellipse(
        (AVATAR_X - ring, AVATAR_Y - ring, AVATAR_X + AVATAR + ring - 1, AVATAR_Y + AVATAR + ring - 1), fill=accent
    )
    image.paste(_avatar(card.avatar, accent), (AVATAR_X, AVATAR_Y), _avatar_mask())

    # Header, right-aligned: "RANK #r of N   LEVEL L".
    rank = f"#{number(card.rank)}" if card.rank is not None else "—"
    level = Line(book, f"LEVEL {number(card.level)}", HEADER_SIZE)
    level.draw(image, RIGHT - level.width, 84, accent)
    ranked = Line(book, f"RANK {rank} of {number(card.ranked_of)}", HEADER_SIZE)
    ranked.draw(image, RIGHT - level.width - GAP - ranked.width, 84, palette.text)

    # Name (cut with "…" to the width the XP figures leave) and XP into the level.
    xp = Line(
        book,
        f"{number(card.xp_into_level)} / {number(card.xp_for_next_level)} {card.xp_name}",
        DETAIL_SIZE,
    ).fit(RIGHT - TEXT_X)
    xp.draw(image, RIGHT - xp.width, BAR_TOP - 16, palette.muted)
    name = Line(book, card.display_name, NAME_SIZE).fit(RIGHT - TEXT_X - xp.width - GAP)
    name.draw(image, TEXT_X, BAR_TOP - 16, palette.text)

    # Progress bar.
    radius = BAR_HEIGHT // 2
    draw.rounded_rectangle((TEXT_X, BAR_TOP, RIGHT, BAR_TOP + BAR_HEIGHT), radius=radius, fill=palette.track)
    span = max(card.xp_for_next_level, 1)
    share = min(max(card.xp_into_level / span, 0.0), 1.0)
    filled = round((RIGHT - TEXT_X) * share)
    if filled > 0:
        end = TEXT_X + max(filled, BAR_HEIGHT)
        draw.rounded_rectangle((TEXT_X, BAR_TOP, end, BAR_TOP + BAR_HEIGHT), radius=radius, fill=accent)

    # Season stars and gold.
    stars = Line(book, f"{card.stars_name} this season: {number(card.season_stars)}", DETAIL_SIZE)
    stars = stars.fit((RIGHT - TEXT_X) / 2 - GAP)
    stars.draw(image, TEXT_X, BAR_TOP + BAR_HEIGHT + 44, palette.muted)
    gold = Line(book, f"{card.gold_name}: {number(card.gold)}", DETAIL_SIZE).fit((RIGHT - TEXT_X) / 2 - GAP)
    gold.draw(image, RIGHT - gold.width, BAR_TOP + BAR_HEIGHT + 44, palette.muted)

    out = io.BytesIO()
    # Level 1: half the time of the default level for a file a few percent larger (flat colours compress well).
    image.convert("RGB").save(out, format="PNG", compress_level=1)
    return out.getvalue()
