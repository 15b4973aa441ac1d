"""A lightbulb extension used only by the tests of the command framework (loaded like any production extension)."""

from __future__ import annotations

import lightbulb

from synapse_async.bot.framework import CommandInputError, Responder, admin_only
from synapse_async.db.faults import DatabaseUnavailable
from synapse_async.services.economy import Economy

loader = lightbulb.Loader()


@loader.command
class Busy(lightbulb.SlashCommand, name="test-busy", description="Fails like a database outage after a public defer"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, responder: Responder = lightbulb.di.INJECTED) -> None:
        await responder.defer(ctx, ephemeral=False)
        raise DatabaseUnavailable("pool timeout")


@loader.command
class Validate(lightbulb.SlashCommand, name="test-validate", description="Rejects its input before deferring"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        raise CommandInputError("xp", "must be between -1,000,000 and 1,000,000")


@loader.command
class AdminPing(lightbulb.SlashCommand, name="test-admin", description="Admins only", hooks=[admin_only]):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context) -> None:
        await ctx.respond("admin ok", ephemeral=True)


@loader.command
class Coffee(lightbulb.SlashCommand, name="test-coffee", description="Buys a coffee through the injected service"):
    @lightbulb.invoke
    async def invoke(self, ctx: lightbulb.Context, economy: Economy = lightbulb.di.INJECTED) -> None:
        assert ctx.guild_id is not None
        result = await economy.buy_coffee(
            guild_id=int(ctx.guild_id), user_id=int(ctx.user.id), interaction_id=int(ctx.interaction.id)
        )
        await ctx.respond(f"ok={result.ok} balance={result.balance}", ephemeral=True)
