"""What every slash command shares (SPEC §17.1): the admin check, deferral bookkeeping and error replies.

Commands stay thin: they validate input BEFORE deferring (input errors never cost a deferred reply), defer at once
when they touch the database (choosing ephemeral or public up front, like the final reply), and raise. The error
handler turns exceptions into the spec's ephemeral replies: database trouble → the "busy" sentence, validation →
the field and the rule, a non-admin → a refusal. After a PUBLIC defer the deferred reply is deleted first so the
error is never shown to the whole channel.
"""

from __future__ import annotations

import hikari
import lightbulb
from cachetools import TTLCache

from synapse_async.access import is_guild_admin
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.faults import is_transient
from synapse_async.obs.logging import get_logger

log = get_logger(__name__)

BUSY_MESSAGE = "The bot is busy right now, please try again in a moment."
NOT_ADMIN_MESSAGE = "This command is for server admins."
FAILED_MESSAGE = "Something went wrong; the error has been logged."


class NotAdmin(Exception):
    """The invoking member is not an admin of the guild."""


class CommandInputError(Exception):
    """Invalid command input: names the field and the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Responder:
    """Remembers which interactions were deferred publicly (bounded: entries expire after 15 minutes)."""

    def __init__(self) -> None:
        self._public_defers: TTLCache[int, bool] = TTLCache(maxsize=10_000, ttl=900)

    async def defer(self, ctx: lightbulb.Context, *, ephemeral: bool) -> None:
        await ctx.defer(ephemeral=ephemeral)
        if not ephemeral:
            self._public_defers[int(ctx.interaction.id)] = True

    def was_public_defer(self, ctx: lightbulb.Context) -> bool:
        return self._public_defers.pop(int(ctx.interaction.id), False)


def member_is_admin(ctx: lightbulb.Context, cache: ConfigCache) -> bool:
    """The §17.1 admin rule on live interaction data (the member's roles and permissions come with the event)."""
    member = ctx.member
    if ctx.guild_id is None or member is None:
        return False
    guild = cache.guild(int(ctx.guild_id))
    return is_guild_admin(
        user_id=int(member.id),
        owner_id=guild.info.owner_id if guild.info is not None else None,
        role_ids=[int(r) for r in member.role_ids],
        has_administrator=hikari.Permissions.ADMINISTRATOR in member.permissions,
        admin_role_ids=guild.settings.snowflakes("access.admin_role_ids"),
    )


@lightbulb.hook(lightbulb.ExecutionSteps.CHECKS, name="admin_only")
def admin_only(
    _pipeline: lightbulb.ExecutionPipeline, ctx: lightbulb.Context, cache: ConfigCache = lightbulb.di.INJECTED
) -> None:
    """A CHECKS hook: fails the pipeline with NotAdmin for non-admins (every admin command runs it)."""
    if not member_is_admin(ctx, cache):
        raise NotAdmin()


def reply_for(error: BaseException) -> str:
    if isinstance(error, NotAdmin):
        return NOT_ADMIN_MESSAGE
    if isinstance(error, CommandInputError):
        return f"{error.field}: {error.rule}"
    if is_transient(error):
        return BUSY_MESSAGE
    return FAILED_MESSAGE


def install(client: lightbulb.Client, cache: ConfigCache, responder: Responder) -> None:
    """Register shared dependencies and the error handler on the lightbulb client."""
    registry = client.di.registry_for(lightbulb.di.Contexts.DEFAULT)
    registry.register_value(ConfigCache, cache)
    registry.register_value(Responder, responder)

    @client.error_handler
    async def on_error(exc: lightbulb.exceptions.ExecutionPipelineFailedException) -> bool:
        cause = exc.causes[0] if exc.causes else exc
        ctx = exc.context
        message = reply_for(cause)
        if message == FAILED_MESSAGE:
            log.error(
                "command_failed",
                command=ctx.command_data.qualified_name,
                guild_id=ctx.guild_id,
                error=f"{type(cause).__name__}: {cause}"[:300],
            )
        try:
            if responder.was_public_defer(ctx):
                await ctx.interaction.delete_initial_response()
            await ctx.respond(message, ephemeral=True)
        except hikari.HTTPError as http_error:
            log.warning("command_error_reply_failed", error=type(http_error).__name__)
        return True
