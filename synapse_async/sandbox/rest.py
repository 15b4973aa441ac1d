"""Discord REST API v10 routes the bot uses (the interaction, webhook and OAuth2 routes live in their modules).

Responses carry the same JSON as Discord's, errors use Discord's `{"message", "code"}` bodies and status codes, and
the checks Discord applies to what the app does are enforced where the spec depends on them — above all the role
hierarchy and Manage Roles on member updates (§13), so the level-role pre-check is tested against real refusals.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from typing import Any

from aiohttp import web

from synapse_async.domain.snowflakes import parse_snowflake as _snowflake
from synapse_async.sandbox import payloads
from synapse_async.sandbox.events import WorldEvents
from synapse_async.sandbox.interactions import CommandStore
from synapse_async.sandbox.oauth import OAuthApi
from synapse_async.sandbox.recording import body_of, discord_error, unknown
from synapse_async.sandbox.world import (
    Channel,
    ChannelType,
    Emoji,
    Guild,
    Member,
    Message,
    Permission,
    World,
)

JSON = dict[str, Any]

UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}
MAX_CONTENT = 2000
MAX_EMBEDS = 10


def _form_error(field: str, code: str, message: str) -> web.Response:
    return discord_error(400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": code, "message": message}]}})


def _missing_permissions() -> web.Response:
    return discord_error(403, 50013, "Missing Permissions")


class RestApi:
    """Bot-token REST routes over the simulated world."""

    def __init__(
        self,
        world: World,
        events: WorldEvents,
        commands: CommandStore,
        oauth: OAuthApi,
        *,
        token: str,
        gateway_url: Callable[[], str],
        recommended_shards: int = 1,
        max_concurrency: int = 16,
        session_start_remaining: int = 1000,
        verify_key: str = "0" * 64,
    ) -> None:
        self.world = world
        self.events = events
        self.commands = commands
        self.oauth = oauth
        self.token = token
        self.gateway_url = gateway_url
        self.recommended_shards = recommended_shards
        self.max_concurrency = max_concurrency
        self.session_start_remaining = session_start_remaining
        self.verify_key = verify_key

    # ------------------------------------------------------------------------------------------------ helpers

    def _is_bot(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bot {self.token}"

    def _guild(self, request: web.Request) -> Guild | None:
        guild_id = _snowflake(request.match_info["guild_id"])
        return self.world.guilds.get(guild_id) if guild_id is not None else None

    def _channel(self, request: web.Request) -> tuple[Guild, Channel] | None:
        channel_id = _snowflake(request.match_info["channel_id"])
        return self.world.find_channel(channel_id) if channel_id is not None else None

    def _message(self, channel: Channel, raw: str) -> Message | None:
        message_id = _snowflake(raw)
        message = self.world.messages.get(message_id) if message_id is not None else None
        if message is None or message.deleted or message.channel_id != channel.id:
            return None
        return message

    def add_routes(self, app: web.Application, base: str) -> None:
        bot = self._bot_only
        r = app.router
        r.add_get(base + "/gateway", self.get_gateway)
        r.add_get(base + "/gateway/bot", bot(self.get_gateway_bot))
        r.add_get(base + "/oauth2/applications/@me", bot(self.get_application))
        r.add_get(base + "/applications/@me", bot(self.get_application))
        r.add_get(base + "/users/@me", self.get_me)
        r.add_get(base + "/users/@me/guilds", self.get_my_guilds)
        r.add_get(base + "/users/{user_id}", bot(self.get_user))
        for scope in ("/applications/{application_id}", "/applications/{application_id}/guilds/{guild_id}"):
            r.add_get(base + scope + "/commands", bot(self.list_commands))
            r.add_put(base + scope + "/commands", bot(self.overwrite_commands))
            r.add_post(base + scope + "/commands", bot(self.create_command))
            r.add_delete(base + scope + "/commands/{command_id}", bot(self.delete_command))
        r.add_get(base + "/guilds/{guild_id}", bot(self.get_guild))
        r.add_get(base + "/guilds/{guild_id}/channels", bot(self.get_guild_channels))
        r.add_get(base + "/guilds/{guild_id}/roles", bot(self.get_guild_roles))
        r.add_get(base + "/guilds/{guild_id}/members", bot(self.list_members))
        r.add_get(base + "/guilds/{guild_id}/members/{user_id}", bot(self.get_member))
        r.add_patch(base + "/guilds/{guild_id}/members/{user_id}", bot(self.patch_member))
        r.add_put(base + "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", bot(self.add_member_role))
        r.add_delete(base + "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", bot(self.remove_member_role))
        r.add_get(base + "/channels/{channel_id}", bot(self.get_channel))
        r.add_post(base + "/channels/{channel_id}/messages", bot(self.create_message))
        r.add_get(base + "/channels/{channel_id}/messages/{message_id}", bot(self.get_message))
        r.add_patch(base + "/channels/{channel_id}/messages/{message_id}", bot(self.edit_message))
        r.add_delete(base + "/channels/{channel_id}/messages/{message_id}", bot(self.delete_message))
        r.add_put(
            base + "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", bot(self.add_own_reaction)
        )

    def _bot_only(self, handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        """Wrap a handler so it answers 401 unless the request carries `Authorization: Bot <token>`."""

        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not self._is_bot(request):
                return web.json_response(UNAUTHORIZED, status=401)
            response: web.StreamResponse = await handler(request)
            return response

        return wrapped

    # ------------------------------------------------------------------------------------------------ gateway / app

    async def get_gateway(self, request: web.Request) -> web.Response:
        return web.json_response({"url": self.gateway_url()})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "url": self.gateway_url(),
                "shards": self.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": self.session_start_remaining,
                    "reset_after": 14_400_000,
                    "max_concurrency": self.max_concurrency,
                },
            }
        )

    async def get_application(self, request: web.Request) -> web.Response:
        return web.json_response(payloads.application_payload(self.world, verify_key=self.verify_key))

    # ------------------------------------------------------------------------------------------------ users

    async def get_me(self, request: web.Request) -> web.Response:
        if self._is_bot(request):
            return web.json_response(payloads.own_user_payload(self.world.bot_user))
        token = self.oauth.bearer(request)
        if token is None or "identify" not in token.scopes:
            return web.json_response(UNAUTHORIZED, status=401)
        user = self.world.user(token.user_id)
        return web.json_response(payloads.own_user_payload(user, with_email="email" in token.scopes))

    async def get_my_guilds(self, request: web.Request) -> web.Response:
        if self._is_bot(request):
            user_id = self.world.bot_user_id
        else:
            token = self.oauth.bearer(request)
            if token is None or "guilds" not in token.scopes:
                return web.json_response(UNAUTHORIZED, status=401)
            user_id = token.user_id
        with_counts = request.query.get("with_counts", "").lower() in ("true", "1")
        guilds = [g for gid, g in sorted(self.world.guilds.items()) if user_id in g.members]
        after = _snowflake(request.query.get("after", "0")) or 0
        before = _snowflake(request.query.get("before", "0")) or 0
        limit = min(int(request.query.get("limit", "200")), 200)
        guilds = [g for g in guilds if g.id > after and (not before or g.id < before)][:limit]
        return web.json_response([payloads.own_guild_payload(g, user_id, with_counts=with_counts) for g in guilds])

    async def get_user(self, request: web.Request) -> web.Response:
        user_id = _snowflake(request.match_info["user_id"])
        user = self.world.users.get(user_id) if user_id is not None else None
        if user is None:
            return unknown("User", 10013)
        return web.json_response(payloads.user_payload(user))

    # ------------------------------------------------------------------------------------------------ commands

    def _command_scope(self, request: web.Request) -> tuple[int | None, web.Response | None]:
        if request.match_info["application_id"] != str(self.world.application_id):
            return None, unknown("Application", 10002)
        if "guild_id" not in request.match_info:
            return None, None
        guild = self._guild(request)
        if guild is None:
            return None, unknown("Guild", 10004)
        return guild.id, None

    async def list_commands(self, request: web.Request) -> web.Response:
        scope, error = self._command_scope(request)
        if error is not None:
            return error
        return web.json_response([self.commands.payload(c) for c in self.commands.records(scope)])

    async def overwrite_commands(self, request: web.Request) -> web.Response:
        scope, error = self._command_scope(request)
        if error is not None:
            return error
        body = body_of(request).json
        if not isinstance(body, list) or not all(isinstance(c, dict) and c.get("name") for c in body):
            return _form_error("_root", "BASE_TYPE_INVALID", "Expected a list of commands")
        records = await self.commands.overwrite(scope, body)
        return web.json_response([self.commands.payload(c) for c in records])

    async def create_command(self, request: web.Request) -> web.Response:
        scope, error = self._command_scope(request)
        if error is not None:
            return error
        body = body_of(request).json
        if not isinstance(body, dict) or not body.get("name"):
            return _form_error("name", "BASE_TYPE_REQUIRED", "This field is required")
        record = await self.commands.create(scope, body)
        return web.json_response(self.commands.payload(record), status=201)

    async def delete_command(self, request: web.Request) -> web.Response:
        scope, error = self._command_scope(request)
        if error is not None:
            return error
        command_id = _snowflake(request.match_info["command_id"])
        if command_id is None or not await self.commands.delete(scope, command_id):
            return unknown("application command", 10063)
        return web.Response(status=204)

    # ------------------------------------------------------------------------------------------------ guilds

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return unknown("Guild", 10004)
        with_counts = request.query.get("with_counts", "").lower() in ("true", "1")
        return web.json_response(payloads.rest_guild_payload(self.world, guild, with_counts=with_counts))

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return unknown("Guild", 10004)
        return web.json_response([payloads.channel_payload(c) for c in guild.top_level_channels()])

    async def get_guild_roles(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return unknown("Guild", 10004)
        return web.json_response([payloads.role_payload(r) for r in guild.sorted_roles()])

    async def list_members(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        if guild is None:
            return unknown("Guild", 10004)
        after = _snowflake(request.query.get("after", "0")) or 0
        limit = max(1, min(int(request.query.get("limit", "1")), 1000))
        members = [guild.members[uid] for uid in sorted(guild.members) if uid > after][:limit]
        return web.json_response([payloads.member_payload(self.world, guild, m) for m in members])

    def _member(self, request: web.Request) -> tuple[Guild, Member] | web.Response:
        guild = self._guild(request)
        if guild is None:
            return unknown("Guild", 10004)
        user_id = _snowflake(request.match_info["user_id"])
        member = guild.members.get(user_id) if user_id is not None else None
        if member is None:
            return unknown("Member", 10007)
        return guild, member

    async def get_member(self, request: web.Request) -> web.Response:
        found = self._member(request)
        if isinstance(found, web.Response):
            return found
        guild, member = found
        return web.json_response(payloads.member_payload(self.world, guild, member))

    def _role_change_error(self, guild: Guild, changed: set[int]) -> web.Response | None:
        """Discord's checks for adding/removing roles: Manage Roles, hierarchy, managed roles."""
        if not changed:
            return None
        bot_id = self.world.bot_user_id
        if not guild.base_permissions(bot_id) & Permission.MANAGE_ROLES:
            return _missing_permissions()
        top = guild.highest_role_position(bot_id)
        for role_id in changed:
            role = guild.roles[role_id]
            if role.managed or role.position >= top:
                return _missing_permissions()
        return None

    async def patch_member(self, request: web.Request) -> web.Response:
        found = self._member(request)
        if isinstance(found, web.Response):
            return found
        guild, member = found
        body = body_of(request).json
        if not isinstance(body, dict):
            return _form_error("_root", "BASE_TYPE_INVALID", "Expected an object")
        supported = {"roles", "nick", "mute", "deaf"}
        if set(body) - supported:
            return _form_error(
                sorted(set(body) - supported)[0], "SANDBOX_UNSUPPORTED", "Field not simulated (roles, nick, mute, deaf)"
            )
        new_roles = member.roles
        if "roles" in body:
            raw = body["roles"]
            if not isinstance(raw, list):
                return _form_error("roles", "BASE_TYPE_INVALID", "Expected a list")
            try:
                wanted = list(dict.fromkeys(int(r) for r in raw))
            except (TypeError, ValueError):
                return _form_error("roles", "NUMBER_TYPE_COERCE", "Value is not snowflake")
            for index, role_id in enumerate(wanted):
                if role_id not in guild.roles or role_id == guild.id:
                    return discord_error(
                        400,
                        50035,
                        "Invalid Form Body",
                        {"roles": {str(index): {"_errors": [{"code": "INVALID_ROLE", "message": "Invalid role"}]}}},
                    )
            error = self._role_change_error(guild, set(wanted) ^ set(member.roles))
            if error is not None:
                return error
            new_roles = wanted
        if "nick" in body and body["nick"] != member.nick:
            if not guild.base_permissions(self.world.bot_user_id) & Permission.MANAGE_NICKNAMES:
                return _missing_permissions()
            if member.user_id == guild.owner_id:
                return _missing_permissions()
        changed = new_roles != member.roles
        member.roles = list(new_roles)
        if "nick" in body:
            changed = changed or body["nick"] != member.nick
            member.nick = body["nick"] or None
        for flag in ("mute", "deaf"):
            if flag in body:
                changed = changed or bool(body[flag]) != getattr(member, flag)
                setattr(member, flag, bool(body[flag]))
        if changed:
            await self.events.member_update(guild, member.user_id)
        return web.json_response(payloads.member_payload(self.world, guild, member))

    async def _single_role(self, request: web.Request, *, add: bool) -> web.Response:
        found = self._member(request)
        if isinstance(found, web.Response):
            return found
        guild, member = found
        role_id = _snowflake(request.match_info["role_id"])
        if role_id is None or role_id not in guild.roles or role_id == guild.id:
            return unknown("Role", 10011)
        if (role_id in member.roles) == add:
            return web.Response(status=204)
        error = self._role_change_error(guild, {role_id})
        if error is not None:
            return error
        if add:
            member.roles.append(role_id)
        else:
            member.roles.remove(role_id)
        await self.events.member_update(guild, member.user_id)
        return web.Response(status=204)

    async def add_member_role(self, request: web.Request) -> web.Response:
        return await self._single_role(request, add=True)

    async def remove_member_role(self, request: web.Request) -> web.Response:
        return await self._single_role(request, add=False)

    # ------------------------------------------------------------------------------------------------ channels

    async def get_channel(self, request: web.Request) -> web.Response:
        found = self._channel(request)
        if found is None:
            return unknown("Channel", 10003)
        return web.json_response(payloads.channel_payload(found[1]))

    def _send_error(self, guild: Guild, channel: Channel) -> web.Response | None:
        perms = guild.channel_permissions(self.world.bot_user_id, channel)
        if not perms & Permission.VIEW_CHANNEL:
            return discord_error(403, 50001, "Missing Access")
        needed = Permission.SEND_MESSAGES_IN_THREADS if channel.is_thread else Permission.SEND_MESSAGES
        if not perms & needed:
            return _missing_permissions()
        return None

    async def create_message(self, request: web.Request) -> web.Response:
        found = self._channel(request)
        if found is None:
            return unknown("Channel", 10003)
        guild, channel = found
        if channel.type == ChannelType.CATEGORY or channel.type.is_thread_only:
            return discord_error(400, 50008, "Cannot send messages in a non-text channel")
        error = self._send_error(guild, channel)
        if error is not None:
            return error
        parsed = body_of(request)
        body: JSON = dict(parsed.json) if isinstance(parsed.json, dict) else {}
        content = str(body.get("content") or "")
        embeds = list(body.get("embeds") or ([body["embed"]] if body.get("embed") else []))
        if not (content or embeds or body.get("components") or body.get("sticker_ids") or parsed.files):
            return discord_error(400, 50006, "Cannot send an empty message")
        if len(content) > MAX_CONTENT:
            return _form_error("content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
        if len(embeds) > MAX_EMBEDS:
            return _form_error("embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
        reply_to: int | None = None
        reference = body.get("message_reference")
        if isinstance(reference, dict) and reference.get("message_id") is not None:
            target = self.world.messages.get(int(reference["message_id"]))
            if target is None or target.deleted:
                if reference.get("fail_if_not_exists", True):
                    return _form_error("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
            else:
                reply_to = target.id
        message, _seqs = await self.events.create_message(
            channel_id=channel.id,
            author_id=self.world.bot_user_id,
            content=content,
            embeds=embeds,
            components=list(body.get("components") or []),
            allowed_mentions=body.get("allowed_mentions"),
            reply_to=reply_to,
            attachments=len(parsed.files),
            flags=int(body.get("flags") or 0),
            nonce=body.get("nonce"),
            tts=bool(body.get("tts", False)),
        )
        return web.json_response(payloads.message_payload(self.world, message))

    async def get_message(self, request: web.Request) -> web.Response:
        found = self._channel(request)
        if found is None:
            return unknown("Channel", 10003)
        message = self._message(found[1], request.match_info["message_id"])
        if message is None:
            return unknown("Message", 10008)
        return web.json_response(payloads.message_payload(self.world, message))

    async def edit_message(self, request: web.Request) -> web.Response:
        found = self._channel(request)
        if found is None:
            return unknown("Channel", 10003)
        message = self._message(found[1], request.match_info["message_id"])
        if message is None:
            return unknown("Message", 10008)
        if message.author_id != self.world.bot_user_id:
            return discord_error(403, 50005, "Cannot edit a message authored by another user")
        body = body_of(request).json
        await self.events.edit_message(message, dict(body) if isinstance(body, dict) else {})
        return web.json_response(payloads.message_payload(self.world, message))

    async def delete_message(self, request: web.Request) -> web.Response:
        found = self._channel(request)
        if found is None:
            return unknown("Channel", 10003)
        guild, channel = found
        message = self._message(channel, request.match_info["message_id"])
        if message is None:
            return unknown("Message", 10008)
        if message.author_id != self.world.bot_user_id and not (
            guild.channel_permissions(self.world.bot_user_id, channel) & Permission.MANAGE_MESSAGES
        ):
            return _missing_permissions()
        await self.events.delete_message(message)
        return web.Response(status=204)

    async def add_own_reaction(self, request: web.Request) -> web.Response:
        found = self._channel(request)
        if found is None:
            return unknown("Channel", 10003)
        message = self._message(found[1], request.match_info["message_id"])
        if message is None:
            return unknown("Message", 10008)
        emoji = Emoji.parse(urllib.parse.unquote(request.match_info["emoji"]))
        await self.events.react(message, self.world.bot_user_id, emoji)
        return web.Response(status=204)
