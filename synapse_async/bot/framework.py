"""What every slash command shares (SPEC §17.1): the admin check, deferral bookkeeping and error replies.

Commands stay thin: they validate input BEFORE deferring (input errors never cost a deferred reply), defer at once
when they touch the database (choosing ephemeral or public up front, like the final reply), and raise. The error
handler turns exceptions into the spec's ephemeral replies: database trouble → the "busy" sentence, validation →
the field and the rule, a non-admin → a refusal. After a PUBLIC defer the deferred reply is deleted first so the
error is never shown to the whole channel.
"""

from __future__ import annotations

from typing import TypedDict

import hikari
import lightbulb
from cachetools import TTLCache

from synapse_async.access import is_guild_admin
from synapse_async.cache.config_cache import ConfigCache
from synapse_async.db.faults import is_transient
from synapse_async.obs.logging import get_logger
from synapse_async.services.audit import Actor

log = get_logger(__name__)

BUSY_MESSAGE = "The bot is busy right now, please try again in a moment."
NOT_ADMIN_MESSAGE = "This command is for server admins."
FAILED_MESSAGE = "Something went wrong; the error has been logged."
ALREADY_ACKNOWLEDGED = 40060  # Discord's error code for a second initial response to one interaction


class NotAdmin(Exception):
    """The invoking member is not an admin of the guild."""


class Refusal(Exception):
    """The command cannot do what was asked, for a reason the member should read (e.g. "Nobody is on this
    leaderboard yet."); answered ephemerally like every error, after removing a public deferred reply."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DuplicateDelivery(Exception):
    """Discord says the interaction is already acknowledged: this INTERACTION_CREATE was delivered again (a gateway
    replay). The first delivery does the work; this one stops before touching anything and is not answered."""


class CommandInputError(Exception):
    """Invalid command input: names the field and the rule it broke."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class Responder:
    """Sends every reply with allowed mentions set to none, and remembers which interactions were deferred and
    how (bounded: entries expire after Discord's 15-minute interaction lifetime).

    A deferred interaction is answered by EDITING its deferred reply (SPEC §17.1), never by a follow-up, so the
    member sees one answer where the "thinking…" placeholder was.
    """

    def __init__(self) -> None:
        self._defers: TTLCache[int, bool] = TTLCache(maxsize=10_000, ttl=900)  # interaction id → ephemeral

    async def defer(self, ctx: lightbulb.Context, *, ephemeral: bool) -> None:
        try:
            await ctx.defer(ephemeral=ephemeral)
        except hikari.BadRequestError as error:
            if error.code == ALREADY_ACKNOWLEDGED:
                raise DuplicateDelivery() from error
            raise
        self._defers[int(ctx.interaction.id)] = ephemeral

    async def reply(
        self,
        ctx: lightbulb.Context,
        content: str | None = None,
        *,
        embed: hikari.Embed | None = None,
        attachment: hikari.Resourceish | None = None,
        ephemeral: bool = True,
    ) -> None:
        """The final answer: edits the deferred reply (keeping its visibility), or responds with `ephemeral`."""
        body = hikari.UNDEFINED if content is None else content
        attached = hikari.UNDEFINED if embed is None else embed
        file = hikari.UNDEFINED if attachment is None else attachment
        if int(ctx.interaction.id) in self._defers:
            await ctx.interaction.edit_initial_response(
                body,
                embed=attached,
                attachment=file,
                mentions_everyone=False,
                user_mentions=False,
                role_mentions=False,
            )
            return
        await ctx.respond(
            body,
            embed=attached,
            attachment=file,
            ephemeral=ephemeral,
            mentions_everyone=False,
            user_mentions=False,
            role_mentions=False,
        )

    async def fail(self, ctx: lightbulb.Context, message: str) -> None:
        """An error answer, always ephemeral (SPEC §17.1): after a PUBLIC defer the deferred reply is deleted first
        and the error follows up ephemerally, so it is never shown to the whole channel."""
        ephemeral_defer = self._defers.pop(int(ctx.interaction.id), None)
        if ephemeral_defer is True:
            await ctx.interaction.edit_initial_response(
                message, mentions_everyone=False, user_mentions=False, role_mentions=False
            )
            return
        if ephemeral_defer is False:
            await ctx.interaction.delete_initial_response()
        await ctx.respond(message, ephemeral=True, mentions_everyone=False, user_mentions=False, role_mentions=False)


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
    if isinstance(error, Refusal):
        return error.message
    if is_transient(error):
        return BUSY_MESSAGE
    return FAILED_MESSAGE


def guild_id_of(ctx: lightbulb.Context) -> int:
    """The guild a command was used in; every command here is guild-only."""
    if ctx.guild_id is None:
        raise Refusal("This command works in a server only.")
    return int(ctx.guild_id)


def interaction_key(ctx: lightbulb.Context) -> str:
    """A command's request id (audit rows, idempotency keys): its interaction id, so a redelivered or double-submitted
    interaction is recognised as the same request."""
    return f"interaction:{int(ctx.interaction.id)}"


def actor_of(ctx: lightbulb.Context) -> Actor:
    """The audit actor of a command (SPEC §22: `via = command`); the interaction id is the request id."""
    return Actor(str(int(ctx.user.id)), "user", "command", request_id=interaction_key(ctx))


class MemberArgs(TypedDict):
    """The member a service call is about, as every member-scoped service method takes it."""

    guild_id: int
    user_id: int
    display_name: str


def member_args(ctx: lightbulb.Context, user: hikari.User | None = None) -> MemberArgs:
    """`user` (default: whoever used the command) as a service call's member: the guild (guild-only, see
    `guild_id_of`), the user id and the name they go by here, which a new member row is created with."""
    target = ctx.user if user is None else user
    return MemberArgs(guild_id=guild_id_of(ctx), user_id=int(target.id), display_name=display_name(ctx, target))


def display_name(ctx: lightbulb.Context, user: hikari.User) -> str:
    """The name a user goes by in this guild: the resolved member's display name, else the global name."""
    resolved = ctx.interaction.resolved
    member = resolved.members.get(user.id) if resolved is not None else None
    if member is None and ctx.member is not None and ctx.member.id == user.id:
        member = ctx.member
    if member is not None:
        return member.display_name
    return user.global_name or user.username


def install(client: lightbulb.Client, cache: ConfigCache, responder: Responder) -> None:
    """Register shared dependencies and the error handler on the lightbulb client."""
    registry = client.di.registry_for(lightbulb.di.Contexts.DEFAULT)
    registry.register_value(ConfigCache, cache)
    registry.register_value(Responder, responder)

    @client.error_handler
    async def on_error(exc: lightbulb.exceptions.ExecutionPipelineFailedException) -> bool:
        cause = exc.causes[0] if exc.causes else exc
        ctx = exc.context
        if isinstance(cause, DuplicateDelivery):
            log.info(
                "interaction_redelivered", command=ctx.command_data.qualified_name, interaction_id=ctx.interaction.id
            )
            return True
        message = reply_for(cause)
        if message == FAILED_MESSAGE:
            log.error(
                "command_failed",
                command=ctx.command_data.qualified_name,
                guild_id=ctx.guild_id,
                error=f"{type(cause).__name__}: {cause}"[:300],
            )
        try:
            await responder.fail(ctx, message)
        except hikari.HTTPError as http_error:
            log.warning("command_error_reply_failed", error=type(http_error).__name__)
        return True
