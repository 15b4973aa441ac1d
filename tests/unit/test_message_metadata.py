"""Message metadata (SPEC §7.2) and reaction emoji keys (SPEC §7.5): pure functions, so pure tests.

The quality modifier (§9.2) and the event lake (§15.1) see only these numbers, never the text, so each field is
pinned on representative messages and the emoji counter is checked against whole-text grapheme segmentation.
"""

from __future__ import annotations

import dataclasses

import emoji as emoji_pkg
import pytest
import regex
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from synapse_async.domain.metadata import MessageMetadata, derive_metadata, emoji_key

GRAPHEME = regex.compile(r"\X")
CUSTOM_TAG = regex.compile(r"<a?:[A-Za-z0-9_]{1,32}:[0-9]{1,20}>")


def reference_emoji_count(text: str) -> int:
    """The §7.2 definition, computed the slow way: segment the whole text, count clusters holding an emoji."""
    return sum(1 for cluster in GRAPHEME.findall(text) if emoji_pkg.emoji_list(cluster))


# --------------------------------------------------------------------------------------------------- all fields


def test_representative_message_every_field() -> None:
    text = (
        "  Hey <@123456789012345678> and <@&223456789012345678>, the fix is at https://example.com/pr/42 👍🏽\n"
        "```py\nprint('ok')\n```\n<:party:998877665544332211> 🇫🇷  "
    )
    meta = derive_metadata(text, attachment_count=2, is_reply=True, reply_to_user_id=42)
    assert meta == MessageMetadata(
        length=len(text.strip()),
        word_count=len(text.split()),
        has_code_block=True,
        has_link=True,
        link_count=1,
        attachment_count=2,
        mention_count=2,
        emoji_count=3,
        is_reply=True,
        reply_to_user_id=42,
    )


def test_plain_ascii_message() -> None:
    meta = derive_metadata("Can someone review my PR before tonight's release?")
    assert (meta.length, meta.word_count) == (50, 8)
    assert not meta.has_code_block and not meta.has_link and not meta.is_reply
    assert (meta.link_count, meta.mention_count, meta.emoji_count, meta.attachment_count) == (0, 0, 0, 0)
    assert meta.reply_to_user_id is None


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t \u3000"])
def test_empty_or_blank_text_is_all_zero_but_keeps_caller_fields(text: str | None) -> None:
    meta = derive_metadata(text, attachment_count=3, user_mentions=1, role_mentions=2, is_reply=True)
    assert (meta.length, meta.word_count, meta.link_count, meta.emoji_count) == (0, 0, 0, 0)
    assert not meta.has_code_block and not meta.has_link
    assert meta.attachment_count == 3 and meta.mention_count == 3 and meta.is_reply


def test_metadata_is_immutable() -> None:
    meta = derive_metadata("hi")
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.length = 99  # type: ignore[misc]


# --------------------------------------------------------------------------------------------- length and words


def test_length_is_code_points_after_trimming() -> None:
    assert derive_metadata("  \n hello world \t\n").length == 11
    assert derive_metadata("naïve").length == 5  # precomposed ï
    assert derive_metadata("nai\u0308ve").length == 6  # i + combining diaeresis: two code points
    assert derive_metadata("👨‍👩‍👧").length == 5  # three people joined by two ZWJ


def test_word_count_splits_on_any_whitespace() -> None:
    assert derive_metadata("one\ttwo\nthree   four").word_count == 4
    assert derive_metadata("  padded  ").word_count == 1
    assert derive_metadata("ideographic\u3000space").word_count == 2


# ------------------------------------------------------------------------------------------------------- emoji


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("👍", 1, id="simple"),
        pytest.param("👍🏽", 1, id="skin-tone"),
        pytest.param("👨‍👩‍👧", 1, id="zwj-family"),
        pytest.param("👩‍💻", 1, id="zwj-profession"),
        pytest.param("🇫🇷", 1, id="flag"),
        pytest.param("🇫🇷🇩🇪", 2, id="two-adjacent-flags"),
        pytest.param("1️⃣", 1, id="keycap"),
        pytest.param("#️⃣", 1, id="keycap-hash"),
        pytest.param("❤️", 1, id="heart-vs16"),
        pytest.param("🎉🎉🎉", 3, id="repeated"),
        pytest.param("great👍job", 1, id="inside-a-word"),
        pytest.param("a 👍🏽 b 👨‍👩‍👧 c 🇫🇷 d 1️⃣", 4, id="mixed-with-text"),
        pytest.param("👍\u0301", 1, id="emoji-with-combining-mark"),
        pytest.param("0123456789 # *", 0, id="digits-hash-star"),
        pytest.param("1\ufe0f", 0, id="digit-with-vs16-is-not-a-keycap"),
        pytest.param("hello world", 0, id="ascii"),
        pytest.param("Привет, как дела? 今日は", 0, id="other-scripts"),
        pytest.param("café déjà vu", 0, id="accents"),
    ],
)
def test_unicode_emoji_counted_once_per_grapheme_cluster(text: str, expected: int) -> None:
    assert derive_metadata(text).emoji_count == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("<:wave:123456789012345678>", 1, id="static"),
        pytest.param("<a:dance:123456789012345678>", 1, id="animated"),
        pytest.param("<:wave:1><a:dance:2> <:x_y_9:3>", 3, id="several"),
        pytest.param("hi <:wave:1> 👍🏽", 2, id="custom-plus-unicode"),
        pytest.param("<:wave:> <wave:1> <:wave 1> :wave:", 0, id="malformed-or-shortcode"),
        pytest.param("<:grinning:1>😀", 2, id="adjacent-unicode-after-tag"),
    ],
)
def test_custom_emoji_tags(text: str, expected: int) -> None:
    assert derive_metadata(text).emoji_count == expected


# ------------------------------------------------------------------------------------------- code, links, mentions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("```", False),
        ("here is ``` an unclosed fence", False),
        ("`inline` and ``double``", False),
        ("```py\nprint(1)\n```", True),
        ("before ```x``` after", True),
        ("``````", True),
    ],
)
def test_code_block_needs_opening_and_closing_fence(text: str, expected: bool) -> None:
    assert derive_metadata(text).has_code_block is expected


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("see http://example.com", 1),
        ("see https://example.com/a?b=c#d", 1),
        ("no preview <https://example.com/x>", 1),
        ("HTTPS://EXAMPLE.COM", 1),
        ("https://a.com/x, and http://b.org/y; also <https://c.net>", 3),
        ("https://a.com/https://b.com", 1),
        ("https://a.com<https://b.com>", 2),
        ("ftp://example.com www.example.com example.com", 0),
        ("a bare https:// scheme", 0),
        ("no link here", 0),
    ],
)
def test_links(text: str, count: int) -> None:
    meta = derive_metadata(text)
    assert meta.link_count == count
    assert meta.has_link is (count > 0)


def test_mentions_counted_from_text() -> None:
    assert derive_metadata("<@1> <@!2> <@&3>").mention_count == 3
    assert derive_metadata("<@1> again <@!1> and <@&3> <@&3>").mention_count == 2  # distinct, like the gateway
    assert derive_metadata("<#123> @everyone @here <@abc> <@&>").mention_count == 0


def test_mention_counts_from_gateway_replace_text_counting() -> None:
    text = "<@1> <@2> <@&3>"
    assert derive_metadata(text, user_mentions=0, role_mentions=0).mention_count == 0
    assert derive_metadata("no tags", user_mentions=4, role_mentions=1).mention_count == 5
    # Only one array given: the other kind is still counted from the text.
    assert derive_metadata(text, user_mentions=7).mention_count == 8
    assert derive_metadata(text, role_mentions=0).mention_count == 2


def test_caller_fields_pass_through() -> None:
    meta = derive_metadata("thanks!", attachment_count=4, is_reply=True, reply_to_user_id=123456789012345678)
    assert meta.attachment_count == 4 and meta.is_reply and meta.reply_to_user_id == 123456789012345678
    unknown_author = derive_metadata("thanks!", is_reply=True)
    assert unknown_author.is_reply and unknown_author.reply_to_user_id is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attachment_count": -1},
        {"user_mentions": -1},
        {"role_mentions": -2},
        {"reply_to_user_id": 5},  # a reply target without is_reply
    ],
)
def test_caller_bugs_are_rejected(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is not the contract
        derive_metadata("hello", **kwargs)  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------------------- emoji_key


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ("👍", "u1f44d"),
        ("👩‍💻", "u1f469-200d-1f4bb"),
        ("❤️", "u2764-fe0f"),
        ("🇫🇷", "u1f1eb-1f1f7"),
        ("1️⃣", "u31-fe0f-20e3"),
        (123456789012345678, "c123456789012345678"),
    ],
)
def test_emoji_key(value: str | int, key: str) -> None:
    assert emoji_key(value) == key


@pytest.mark.parametrize("bad", [True, 0, -5, ""])
def test_emoji_key_rejects_non_emoji(bad: str | int) -> None:
    with pytest.raises((TypeError, ValueError)):
        emoji_key(bad)


@given(st.one_of(st.text(min_size=1), st.integers(min_value=1, max_value=2**64)))
def test_emoji_key_is_ascii_typed_and_reversible(value: str | int) -> None:
    key = emoji_key(value)
    assert key.isascii()
    if isinstance(value, int):
        assert key == f"c{value}"
    else:
        assert key[0] == "u"
        assert "".join(chr(int(part, 16)) for part in key[1:].split("-")) == value


# --------------------------------------------------------------------------------------------------- properties

FRAGMENTS = [
    "👍", "🏽", "👨‍👩‍👧", "👩‍💻", "🇫", "🇷", "🇫🇷", "1️⃣", "#", "1", "❤", "❤️", "©", "™", "\u200d", "\ufe0f", "\u20e3",
    "\u0301", "\u0600", "\r", "\n", "\r\n", " ", "\t", "\u3000", "\x85", "\u2028", "\ud800", "é", "Я", "字", "a", ":",
    "<", ">", "@", "&", "!", "`", "```", "<:wave:123>", "<a:dance:9>", "<@1>", "<@!2>", "<@&3>", "https://x.io",
    "<http://y.io>", "\U000e0067", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
]  # fmt: skip
messages = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.characters()), max_size=60).map("".join) | st.text()


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
@example("1️⃣ #️⃣ 👍🏽 <:a:1>")
def test_derive_invariants_hold_for_any_text(text: str) -> None:
    meta = derive_metadata(text)
    trimmed = text.strip()
    assert meta.length == len(trimmed)
    assert meta.word_count == len(trimmed.split())
    counts = (meta.word_count, meta.link_count, meta.mention_count, meta.emoji_count, meta.attachment_count)
    assert all(n >= 0 for n in counts)
    assert meta.has_link is (meta.link_count > 0)
    assert meta.emoji_count <= len(GRAPHEME.findall(trimmed)) + len(CUSTOM_TAG.findall(trimmed))


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(messages.filter(lambda t: "<" not in t))
@example("\u0600 🏽")
@example("👍 \u0301🏽")
@example("🇫 🇷🇫🇷🇫")
def test_emoji_count_equals_whole_text_segmentation(text: str) -> None:
    """The per-word fast path must agree with segmenting the whole text (no custom tags here)."""
    assert derive_metadata(text).emoji_count == reference_emoji_count(text.strip())


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    messages.filter(lambda t: "<" not in t),
    st.sampled_from(["<:wave:1>", "<a:dance:22>"]),
    messages.filter(lambda t: "<" not in t),
)
def test_custom_tag_counts_once_and_never_as_text(before: str, tag: str, after: str) -> None:
    expected = 1 + reference_emoji_count(before.strip()) + reference_emoji_count(after.strip())
    assert derive_metadata(before + tag + after).emoji_count == expected
