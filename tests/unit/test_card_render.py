"""The pure rank-card renderer (SPEC §29): size, every script drawn where the name goes with a font that has its
characters (no tofu), names cut with "…", and no crash for a script without any font.

No database, network or subprocess; the only files read are the installed fonts (the renderer's assets). A script
whose font is not installed is skipped with the reason, not failed."""

from __future__ import annotations

import io
from functools import cache

import pytest
from PIL import Image, ImageChops

from synapse_async.card import HEIGHT, RAQM, WIDTH, CardData, FontBook, render
from synapse_async.card.render import BAR_TOP, NAME_SIZE, RIGHT, TEXT_X, parse_accent
from synapse_async.card.text import ELLIPSIS, Line, clusters, visual_order

SCRIPTS = {
    "latin": "Zoë Åkesson",
    "greek": "Σωκράτης",
    "cyrillic": "Достоевский",
    "arabic": "محمد علي",
    "hebrew": "שלום עולם",
    "cjk": "山田太郎",
    "emoji": "🎉👨‍👩‍👧",
}


@cache
def book() -> FontBook:
    return FontBook.from_system()


def card(name: str, **changes: object) -> CardData:
    base: dict[str, object] = {
        "display_name": name,
        "avatar": None,
        "level": 7,
        "rank": 3,
        "ranked_of": 120,
        "xp_into_level": 340,
        "xp_for_next_level": 1000,
        "season_stars": 55,
        "gold": 1234,
    }
    return CardData(**(base | changes))  # type: ignore[arg-type]


def image(png: bytes) -> Image.Image:
    return Image.open(io.BytesIO(png)).convert("RGB")


def name_area(img: Image.Image) -> Image.Image:
    return img.crop((TEXT_X, BAR_TOP - 16 - NAME_SIZE - 10, RIGHT, BAR_TOP - 2))


def require_fonts(text: str) -> None:
    """Skip (not fail) when no installed font has the script's characters (asked of every font, not of the
    fallback under test): the card then uses the default font."""
    for char in text:
        if char.isspace() or char in "\u200d\ufe0f":
            continue
        if not any(book().covers(face, char) for face in book().faces):
            pytest.skip(f"no installed font covers {char!r} (install fonts-noto-core/-cjk/-color-emoji)")


def test_the_card_is_a_934_by_282_png() -> None:
    png = render(card("Ada"), book())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert image(png).size == (WIDTH, HEIGHT) == (934, 282)


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_each_script_is_drawn_where_the_name_goes(script: str) -> None:
    name = SCRIPTS[script]
    require_fonts(name)
    blank = name_area(image(render(card(""), book())))
    named = name_area(image(render(card(name), book())))
    assert ImageChops.difference(blank, named).getbbox() is not None, f"{script}: the name changed no pixel"


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_no_tofu_every_character_gets_a_font_that_has_it(script: str) -> None:
    name = SCRIPTS[script]
    require_fonts(name)
    for cluster in clusters(name):
        if cluster.isspace():
            continue
        face = book().face_for(cluster)
        assert face is not None
        for char in cluster:
            if char not in "\u200d\ufe0f":
                assert book().covers(face, char), f"{char!r} would be tofu in {face.name}"


def test_emoji_use_the_colour_font_and_draw_colour() -> None:
    require_fonts("🎉")
    face = book().face_for("🎉")
    assert book().is_color(face)
    area = name_area(image(render(card("🎉🎉🎉", accent="#808080", theme="dark"), book())))
    # A character the text font has too (©) is drawn as an emoji when asked to (VS16), as text otherwise.
    assert book().is_color(book().face_for("\u00a9\ufe0f"))
    assert not book().is_color(book().face_for("\u00a9"))
    saturation = area.convert("HSV").getchannel("S").getextrema()
    assert saturation[1] > 150, "the emoji were not drawn in colour"


def test_arabic_and_hebrew_lines_run_right_to_left() -> None:
    require_fonts("محمد")
    line = Line(book(), "محمد Ada", NAME_SIZE)
    assert line.rtl
    order = visual_order(line.runs, line.rtl)
    assert order[0].text.strip() == "Ada"  # the Latin word sits to the left of the Arabic one
    assert order[-1].rtl
    if not RAQM:
        pytest.skip("basic layout: Arabic is reversed but not joined (README)")


def test_long_names_are_cut_with_an_ellipsis_to_the_width() -> None:
    long_name = "Bartholomew Fitzgerald-Featherstonehaugh the Third of Somewhere Far"
    line = Line(book(), long_name, NAME_SIZE).fit(400)
    assert line.text.endswith(ELLIPSIS)
    assert line.width <= 400
    assert long_name.startswith(line.text[:-1])
    assert Line(book(), "Ada", NAME_SIZE).fit(400).text == "Ada"  # short names are untouched


def test_cutting_never_splits_a_grapheme_cluster() -> None:
    family = "👨‍👩‍👧"
    line = Line(book(), "Ab" + family * 30, NAME_SIZE).fit(200)
    body = line.text[: -len(ELLIPSIS)]
    assert body.startswith("Ab")
    assert body[2:] == family * ((len(body) - 2) // len(family))


def test_the_rendered_name_is_cut_within_the_card() -> None:
    long_name = "W" * 200
    img = image(render(card(long_name), book()))
    short = image(render(card("W" * 5), book()))
    assert img.size == (WIDTH, HEIGHT)
    assert ImageChops.difference(img, short).getbbox() is not None


def test_a_script_without_any_font_falls_back_to_the_default_font() -> None:
    empty = FontBook([])
    assert empty.face_for("山") is None
    png = render(card("山田 محمد 🎉 Ada"), empty)
    blank = render(card(""), empty)
    assert ImageChops.difference(name_area(image(png)), name_area(image(blank))).getbbox() is not None


def test_themes_and_accent() -> None:
    dark = image(render(card("Ada", theme="dark"), book()))
    light = image(render(card("Ada", theme="light"), book()))
    assert dark.getpixel((20, 20)) != light.getpixel((20, 20))
    assert parse_accent("#ff0000") == (255, 0, 0)
    assert parse_accent("nonsense") == parse_accent(None)
    red = image(render(card("Ada", accent="#ff0000", xp_into_level=1000), book()))
    assert red.getpixel((TEXT_X + 100, BAR_TOP + 18)) == (255, 0, 0)


def test_an_avatar_image_is_drawn_and_a_broken_one_is_not_a_crash() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 200, 0)).save(buffer, format="PNG")
    with_avatar = image(render(card("Ada", avatar=buffer.getvalue()), book()))
    assert with_avatar.getpixel((140, 141)) == (0, 200, 0)
    broken = image(render(card("Ada", avatar=b"not an image"), book()))
    assert broken.size == (WIDTH, HEIGHT)
