"""The message quality modifier of SPEC §9.2 (messages, XP only).

Quality rewards effort that can be measured without keeping the text (§7.2): length tiers, a code block, a link,
an attachment, and penalises emoji spam. Factors multiply, so a long message with code, a link and a file earns
the most; the floor keeps a heavily penalised message from earning nothing, because zeroing is the job of the
explicit anti-gaming rules (§9.4), which leave a `zero_reason`, not of a hidden factor.
"""

from __future__ import annotations

from synapse_async.domain.metadata import MessageMetadata
from synapse_async.settings import ResolvedSettings

__all__ = ["quality", "quality_factors"]


def quality_factors(meta: MessageMetadata, settings: ResolvedSettings) -> dict[str, float]:
    """The five factors `T`, `C`, `L`, `A`, `E` of §9.2; a factor whose condition is false is 1.

    The length tiers are exclusive (a long message gets `long_bonus`, not both bonuses), and every comparison is
    strict: a message of exactly `medium_chars` characters is not yet "longer than" it.
    """
    s = settings
    if meta.length > s.int("quality.long_chars"):
        tier = s.float("quality.long_bonus")
    elif meta.length > s.int("quality.medium_chars"):
        tier = s.float("quality.medium_bonus")
    else:
        tier = 1.0
    return {
        "length": tier,
        "code_block": s.float("quality.code_block_bonus") if meta.has_code_block else 1.0,
        "link": s.float("quality.link_bonus") if meta.has_link else 1.0,
        "attachment": s.float("quality.attachment_bonus") if meta.attachment_count > 0 else 1.0,
        "emoji_spam": (
            s.float("quality.emoji_spam_penalty") if meta.emoji_count > s.int("quality.emoji_spam_threshold") else 1.0
        ),
    }


def quality(meta: MessageMetadata, settings: ResolvedSettings) -> float:
    """`q = max(quality.floor, T × C × L × A × E)`; with default settings 0.5 ≤ q ≤ 2.8875.

    The product is taken in the spec's order (T, C, L, A, E) so results are reproducible to the last bit; the
    formula adds a 1e-9 epsilon before flooring to absorb the remaining binary rounding (§9.4).
    """
    f = quality_factors(meta, settings)
    product = f["length"] * f["code_block"] * f["link"] * f["attachment"] * f["emoji_spam"]
    return max(settings.float("quality.floor"), product)
