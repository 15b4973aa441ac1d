"""Admin commands (SPEC §17.3): `/award`, `/create-achievement`, `/grant-achievement`, all audited `via = command`.

Each carries `default_member_permissions` = Manage Server, so ordinary members don't see it, and the `admin_only`
hook, so the §17.1 admin rule is checked on every call whatever a guild's integration settings allow. The
interaction id is the request id: Discord redelivering an interaction (or a member double-submitting it) can never
pay twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import hikari
import lightbulb

from synapse_async.bot.framework import (
    CommandInputError,
    MemberArgs,
    Refusal,
    Responder,
    actor_of,
    admin_only,
    display_name,
    guild_id_of,
    interaction_key,
    member_args,
)
from synapse_async.bot.render import escape, number
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.rewards.achievements import SCOPES, STAT_NAMES, TRIGGER_TYPES
from synapse_async.services.audit import Actor
from synapse_async.services.catalogue import Catalogue, NewTemplate, TemplateRejected, template_problems
from synapse_async.services.economy import Economy, GrantRejected

loader = lightbulb.Loader()

ADMIN_PERMISSIONS = hikari.Permissions.MANAGE_GUILD
AMOUNT_LIMIT = 1_000_000
REASON_LIMIT = 200
DEFAULT_REASON = "Manual award"
AUTOCOMPLETE_LIMIT = 25
GRANT_REFUSALS = {
    "unknown": "Unknown achievement.",
    "inactive": "That achievement is inactive.",
    "already_earned": "They have already earned it.",
    "max_earners": "That achievement has reached its maximum number of earners.",
}


def _choices(pairs: Iterable[tuple[str, int]], typed: str) -> list[hikari.impl.AutocompleteChoiceBuilder]:
    """Up to 25 `(name, id)` pairs whose name contains what the admin typed (case-insensitive), in order."""
    needle = typed.casefold()
    out = []
    for name, ident in pairs:
        if needle in name.casefold():
            out.append(hikari.impl.AutocompleteChoiceBuilder(name=name[:100], value=str(ident)))
        if len(out) == AUTOCOMPLETE_LIMIT:
            break
    return out


def _pick(raw: str | None, field: str, pairs: Iterable[tuple[str, int]]) -> int | None:
    """An autocompleted id (the choice's value), or a name typed in full; unknown → a field error."""
    if raw is None:
        return None
    known = list(pairs)
    if raw.isdigit() and any(ident == int(raw) for _, ident in known):
        return int(raw)
    for name, ident in known:
        if name.casefold() == raw.casefold():
            return ident
    raise CommandInputError(field, "unknown in this server; pick one of the suggestions")


def _rarities(cache: ConfigCache, guild_id: int) -> list[tuple[str, int]]:
    rarities = sorted(cache.guild(guild_id).rarities.values(), key=lambda r: (r.sort_order, r.rarity_id))
    return [(r.name, r.rarity_id) for r in rarities]


def _categories(cache: ConfigCache, guild_id: int) -> list[tuple[str, int]]:
    categories = sorted(cache.guild(guild_id).categories.values(), key=lambda c: (c.sort_order, c.category_id))
    return [(c.name, c.category_id) for c in categories]


def _templates(cache: ConfigCache, guild_id: int) -> list[tuple[str, int]]:
    return [(t.name, t.template_id) for t in cache.guild(guild_id).templates]


async def _suggest(
    ctx: lightbulb.AutocompleteContext[str],
    cache: ConfigCache,
    pairs: Callable[[ConfigCache, int], list[tuple[str, int]]],
) -> None:
    """Answer an autocomplete with the guild's `pairs` matching what was typed (nothing outside a guild)."""
    if ctx.interaction.guild_id is not None:
        await ctx.respond(_choices(pairs(cache, int(ctx.interaction.guild_id)), str(ctx.focused.value or "")))


async def rarity_autocomplete(
    ctx: lightbulb.AutocompleteContext[str], cache: ConfigCache = lightbulb.di.INJECTED
) -> None:
    await _suggest(ctx, cache, _rarities)


async def category_autocomplete(
    ctx: lightbulb.AutocompleteContext[str], cache: ConfigCache = lightbulb.di.INJECTED
) -> None:
    await _suggest(ctx, cache, _categories)


async def template_autocomplete(
    ctx: lightbulb.AutocompleteContext[str], cache: ConfigCache = lightbulb.di.INJECTED
) -> None:
    """Active templates only: the cache holds no others (§12.3 inactive templates are not grantable)."""
    await _suggest(ctx, cache, _templates)


def _human(target: hikari.User) -> hikari.User:
    """The `member` option, refused as input when it names a bot (bots take no part in the economy)."""
    if target.is_bot:
        raise CommandInputError("member", "bots don't take part")
    return target


class _WriteArgs(MemberArgs):
    actor: Actor
    request_id: str
    channel_id: int


def _write_args(ctx: lightbulb.Context, target: hikari.User) -> _WriteArgs:
    """What an admin command's economy write takes from the interaction: the target member, the audit actor, the
    interaction id as request id (a redelivery never pays twice) and the channel (announcement fallback)."""
    return _WriteArgs(
        **member_args(ctx, target), actor=actor_of(ctx), request_id=interaction_key(ctx), channel_id=int(ctx.channel_id)
    )


def _check_amount(field: str, value: int) -> None:
    if not -AMOUNT_LIMIT <= value <= AMOUNT_LIMIT:
        raise CommandInputError(field, f"must be between -{AMOUNT_LIMIT:,} and {AMOUNT_LIMIT:,}")


@loader.command
class AwardCommand(
    lightbulb.SlashCommand,
    name="award",
    description="Give or take XP and gold",
    default_member_permissions=ADMIN_PERMISSIONS,
    hooks=[admin_only],
):
    member = lightbulb.user("member", "Who receives it")
    xp = lightbulb.integer("xp", "XP to add (negative to take)", default=0)
    gold = lightbulb.integer("gold", "Gold to add (negative to take)", default=0)
    reason = lightbulb.string("reason", "Why (shown in the announcement)", default=DEFAULT_REASON)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        economy: Economy = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        target: hikari.User = self.member
        _check_amount("xp", self.xp)
        _check_amount("gold", self.gold)
        if self.xp == 0 and self.gold == 0:
            raise CommandInputError("xp", "xp or gold must be non-zero")
        reason = self.reason.strip()
        if not reason or len(reason) > REASON_LIMIT:
            raise CommandInputError("reason", f"must be 1–{REASON_LIMIT} characters")
        _human(target)
        await responder.defer(ctx, ephemeral=True)
        result = await economy.award(**_write_args(ctx, target), xp=self.xp, gold=self.gold, reason=reason)
        settings = cache.settings(guild_id)
        xp_name, gold_name = escape(settings.str("economy.xp_name")), escape(settings.str("economy.gold_name"))
        await responder.reply(
            ctx,
            f"Applied {result.xp_applied:+,} {xp_name} and {result.gold_applied:+,} {gold_name} to "
            f"{escape(display_name(ctx, target))}. Now {number(result.xp)} {xp_name}, {number(result.gold)} "
            f"{gold_name}, level {number(result.level)}.",
        )


@loader.command
class CreateAchievementCommand(
    lightbulb.SlashCommand,
    name="create-achievement",
    description="Add an achievement to this server's catalogue",
    default_member_permissions=ADMIN_PERMISSIONS,
    hooks=[admin_only],
):
    name = lightbulb.string("name", "Achievement name", max_length=100)
    trigger = lightbulb.string("trigger", "When it is earned", choices=[lightbulb.Choice(t, t) for t in TRIGGER_TYPES])
    value = lightbulb.integer("value", "Threshold (every trigger but manual)", default=None)
    stat = lightbulb.string(
        "stat", "Stat for stat_threshold", choices=[lightbulb.Choice(s, s) for s in STAT_NAMES], default=None
    )
    event_type = lightbulb.string("event_type", "Event-lake type for event_count", default=None)
    scope = lightbulb.string(
        "scope", "season or lifetime (default lifetime)", choices=[lightbulb.Choice(s, s) for s in SCOPES], default=None
    )
    description = lightbulb.string("description", "What it is for", default=None, max_length=500)
    rarity = lightbulb.string("rarity", "Rarity", autocomplete=rarity_autocomplete, default=None)
    category = lightbulb.string("category", "Category", autocomplete=category_autocomplete, default=None)
    xp_reward = lightbulb.integer("xp_reward", "XP paid on earning", default=0)
    gold_reward = lightbulb.integer("gold_reward", "Gold paid on earning", default=0)
    hidden = lightbulb.boolean("hidden", "Hide name and criteria from everyone but earners", default=False)
    max_earners = lightbulb.integer("max_earners", "At most this many members can earn it", default=None)

    def _new(self, cache: ConfigCache, guild_id: int) -> NewTemplate:
        config: dict[str, object] = {}
        for key in ("stat", "event_type", "value", "scope"):  # the order §12.2 declares them in
            if (given := getattr(self, key)) is not None:
                config[key] = given
        return NewTemplate(
            name=self.name,
            trigger_type=self.trigger,
            trigger_config=config,
            description=self.description,
            category_id=_pick(self.category, "category", _categories(cache, guild_id)),
            rarity_id=_pick(self.rarity, "rarity", _rarities(cache, guild_id)),
            xp_reward=self.xp_reward,
            gold_reward=self.gold_reward,
            is_hidden=self.hidden,
            max_earners=self.max_earners,
        )

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        catalogue: Catalogue = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        new = self._new(cache, guild_id)
        config = cache.guild(guild_id)
        ids = {"category_ids": config.categories.keys(), "rarity_ids": config.rarities.keys()}
        if problems := template_problems(new, **ids):
            raise Refusal(_problem_list(problems))
        await responder.defer(ctx, ephemeral=True)
        try:
            created = await catalogue.create_template(guild_id=guild_id, new=new, actor=actor_of(ctx))
        except TemplateRejected as rejected:
            raise Refusal(_problem_list(rejected.problems)) from rejected
        rewards = f"{number(created.xp_reward)} XP, {number(created.gold_reward)} gold"
        settings = ", ".join(f"{k}={v}" for k, v in created.trigger_config.items()) or "none"
        await responder.reply(
            ctx,
            f"Created achievement #{created.template_id} **{escape(created.name)}**: trigger {created.trigger_type} "
            f"({settings}); rewards {rewards}.",
        )


def _problem_list(problems: list[tuple[str, str]]) -> str:
    """Every field error, one per line, in the names the admin typed (`trigger_config.value` → `value`)."""
    return "\n".join(f"{field.removeprefix('trigger_config.')}: {problem}" for field, problem in problems)


@loader.command
class GrantAchievementCommand(
    lightbulb.SlashCommand,
    name="grant-achievement",
    description="Give a member an achievement",
    default_member_permissions=ADMIN_PERMISSIONS,
    hooks=[admin_only],
):
    member = lightbulb.user("member", "Who receives it")
    achievement = lightbulb.string("achievement", "Which achievement", autocomplete=template_autocomplete)

    @lightbulb.invoke
    async def invoke(
        self,
        ctx: lightbulb.Context,
        economy: Economy = lightbulb.di.INJECTED,
        cache: ConfigCache = lightbulb.di.INJECTED,
        responder: Responder = lightbulb.di.INJECTED,
    ) -> None:
        guild_id = guild_id_of(ctx)
        target = _human(self.member)
        try:
            template_id = _pick(self.achievement, "achievement", _templates(cache, guild_id))
        except CommandInputError:
            # Not among the ACTIVE templates: an id of an inactive one reaches the service, which says why.
            if not self.achievement.isdigit():
                raise
            template_id = int(self.achievement)
        assert template_id is not None
        await responder.defer(ctx, ephemeral=True)
        try:
            result = await economy.grant(**_write_args(ctx, target), template_id=template_id)
        except GrantRejected as rejected:
            raise Refusal(GRANT_REFUSALS[rejected.reason]) from rejected
        await responder.reply(
            ctx,
            f"Granted achievement #{result.template_id} to {escape(display_name(ctx, target))}: "
            f"{result.xp_applied:+,} XP, {result.gold_applied:+,} gold. Now level {number(result.level)}.",
        )
