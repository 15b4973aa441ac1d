"""Pure builders for the announcement embeds of SPEC §14 (one function per kind, no I/O, no Discord state).

They are kept free of hikari clients and of the config cache so the exact wording of the §14 table can be
unit-tested without a bot, and so the pipeline can build the embed inside its after-commit step from values it
already holds. Mentions are written as `<@id>`: they render as the member's name but never ping, because the
announcer always sends with allowed mentions set to none.

User-controlled text (template names, descriptions, reasons, admin names) is capped at Discord's embed limits so a
long value can never make the whole send fail with a 400 — an announcement with a shortened reason is better than
none.
"""

from __future__ import annotations

import hikari

__all__ = ["achievement_embed", "award_embed", "level_up_embed", "mention"]

DESCRIPTION_LIMIT = 4096
"""Discord's limit for an embed description."""
FOOTER_LIMIT = 2048
"""Discord's limit for an embed footer text."""


def mention(user_id: int) -> str:
    """The user mention markup; it renders as the member's name (pinging is prevented at send time)."""
    return f"<@{user_id}>"


def _cap(text: str, limit: int) -> str:
    """Shorten `text` to `limit` characters with an ellipsis, so Discord never rejects the embed for its size."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _color(value: str | None) -> hikari.Color | None:
    """The rarity colour (`#RRGGBB`), or None for a missing or malformed value — a bad colour must not cost the
    announcement."""
    if not value:
        return None
    try:
        return hikari.Color.of(value)
    except (TypeError, ValueError):
        return None


def _amounts(xp: int, gold: int, xp_name: str, gold_name: str, separator: str) -> str:
    """The text "+X xp_name{sep}+Y gold_name" with only the positive parts ("" when neither is positive)."""
    parts = []
    if xp > 0:
        parts.append(f"+{xp} {xp_name}")
    if gold > 0:
        parts.append(f"+{gold} {gold_name}")
    return separator.join(parts)


def level_up_embed(*, user_id: int, level: int, gold: int, gold_name: str, avatar_url: str | None) -> hikari.Embed:
    """Title "Level up!" — "{mention} reached **Level {L}**", then "+{gold} {gold_name}" only when gold was paid.

    One embed per event even across several levels (the caller passes the new peak level and the total gold).
    """
    lines = [f"{mention(user_id)} reached **Level {level}**"]
    if gold > 0:
        lines.append(f"+{gold} {gold_name}")
    embed = hikari.Embed(title="Level up!", description=_cap("\n".join(lines), DESCRIPTION_LIMIT))
    if avatar_url:
        embed.set_thumbnail(avatar_url)
    return embed


def achievement_embed(
    *,
    user_id: int,
    name: str,
    rarity_name: str | None,
    rarity_emoji: str | None,
    rarity_color: str | None,
    description: str | None,
    hidden: bool,
    xp: int,
    gold: int,
    xp_name: str,
    gold_name: str,
    image_url: str | None,
    granted_by: str | None,
) -> hikari.Embed:
    """Title "Achievement unlocked!" — "{mention} earned {emoji} **{name}** ({rarity})".

    The template description follows unless the template is hidden (its condition stays a secret even to those who
    see someone earn it); "Rewards: +X · +Y" shows only positive amounts; the colour is the rarity's; the image is
    the badge or, failing that, the avatar (the caller picks); "Granted by {admin}" marks manual grants. A template
    without rarity simply omits the emoji and the "(rarity)" suffix.
    """
    headline = f"{mention(user_id)} earned "
    if rarity_emoji:
        headline += f"{rarity_emoji} "
    headline += f"**{name}**"
    if rarity_name:
        headline += f" ({rarity_name})"
    lines = [headline]
    if description and not hidden:
        lines.append(description)
    rewards = _amounts(xp, gold, xp_name, gold_name, " · ")
    if rewards:
        lines.append(f"Rewards: {rewards}")
    embed = hikari.Embed(
        title="Achievement unlocked!",
        description=_cap("\n".join(lines), DESCRIPTION_LIMIT),
        color=_color(rarity_color),
    )
    if image_url:
        embed.set_thumbnail(image_url)
    if granted_by:
        embed.set_footer(_cap(f"Granted by {granted_by}", FOOTER_LIMIT))
    return embed


def award_embed(
    *, user_id: int, xp: int, gold: int, xp_name: str, gold_name: str, reason: str, awarded_by: str
) -> hikari.Embed:
    """Title "Award" — "{mention} received +X {xp_name} / +Y {gold_name}" (positive parts only), "Reason: …",
    footer "Awarded by {admin}".

    §14 announces a manual award only if an applied amount is positive, so a call with nothing positive is a
    caller bug and raises `ValueError` instead of posting "received" with nothing after it.
    """
    amounts = _amounts(xp, gold, xp_name, gold_name, " / ")
    if not amounts:
        raise ValueError("an award is announced only when an applied amount is positive")
    lines = [f"{mention(user_id)} received {amounts}"]
    if reason.strip():
        lines.append(f"Reason: {reason.strip()}")
    embed = hikari.Embed(title="Award", description=_cap("\n".join(lines), DESCRIPTION_LIMIT))
    embed.set_footer(_cap(f"Awarded by {awarded_by}", FOOTER_LIMIT))
    return embed
