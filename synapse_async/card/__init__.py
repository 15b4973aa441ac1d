"""The rank card (SPEC §29): a pure renderer and its font fallback; no database or network (fonts are files)."""

from synapse_async.card.fonts import RAQM, FontBook, FontFace, discover
from synapse_async.card.render import HEIGHT, NEUTRAL_ACCENT, WIDTH, CardData, Theme, render

__all__ = [
    "HEIGHT",
    "NEUTRAL_ACCENT",
    "RAQM",
    "WIDTH",
    "CardData",
    "FontBook",
    "FontFace",
    "Theme",
    "discover",
    "render",
]
