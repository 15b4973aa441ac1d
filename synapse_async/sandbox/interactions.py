"""Application commands and interactions: registration, INTERACTION_CREATE, callbacks, webhooks follow-ups.

The app's slash commands (§17) are exercised end to end: the simulator stores the commands the bot registers,
dispatches an INTERACTION_CREATE shaped exactly like Discord's for an invocation, then serves the interaction
callback and webhook endpoints the bot answers through. Discord's rules that the app must respect are enforced:
an interaction must be acknowledged once and within the acknowledgement window (3 s), the interaction token
expires, and the first follow-up after a deferral replaces the "thinking" message.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from synapse_async.sandbox import payloads
from synapse_async.sandbox.events import CDN_URL, WorldEvents
from synapse_async.sandbox.recording import body_of, discord_error
from synapse_async.sandbox.world import (
    Attachment,
    Guild,
    Message,
    MessageFlag,
    MessageType,
    World,
)

JSON = dict[str, Any]

# Interaction callback types
CALLBACK_CHANNEL_MESSAGE = 4
CALLBACK_DEFERRED_CHANNEL_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE_MESSAGE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE_RESULT = 8
CALLBACK_MODAL = 9

# Interaction types
INTERACTION_COMMAND = 2
INTERACTION_AUTOCOMPLETE = 4

# Application command option types
OPTION_SUB_COMMAND = 1
OPTION_SUB_COMMAND_GROUP = 2
OPTION_STRING = 3
OPTION_INTEGER = 4
OPTION_BOOLEAN = 5
OPTION_USER = 6
OPTION_CHANNEL = 7
OPTION_ROLE = 8
OPTION_MENTIONABLE = 9
OPTION_NUMBER = 10
OPTION_ATTACHMENT = 11


# ---------------------------------------------------------------------------------------------------- commands


@dataclass(slots=True)
class CommandRecord:
    """A registered application command (global when `guild_id` is None)."""

    id: int
    guild_id: int | None
    version: int
    definition: JSON

    @property
    def name(self) -> str:
        return str(self.definition["name"])

    @property
    def type(self) -> int:
        return int(self.definition.get("type") or 1)


class CommandStore:
    """Global and per-guild commands, with Discord's bulk-overwrite semantics (ids kept for the same name/type)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._scopes: dict[int | None, dict[tuple[str, int], CommandRecord]] = {}
        self.changed = asyncio.Condition()

    def records(self, guild_id: int | None) -> list[CommandRecord]:
        return list(self._scopes.get(guild_id, {}).values())

    def payload(self, record: CommandRecord) -> JSON:
        body = dict(record.definition)
        permissions = body.get("default_member_permissions")
        out: JSON = {
            "id": str(record.id),
            "application_id": str(self.world.application_id),
            "version": str(record.version),
            "type": record.type,
            "name": record.name,
            "name_localizations": body.get("name_localizations") or None,
            "description": body.get("description", ""),
            "description_localizations": body.get("description_localizations") or None,
            "default_member_permissions": None if permissions is None else str(int(permissions)),
            "dm_permission": body.get("dm_permission", True),
            "nsfw": bool(body.get("nsfw", False)),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types") or [0],
        }
        if body.get("options"):
            out["options"] = body["options"]
        if record.guild_id is not None:
            out["guild_id"] = str(record.guild_id)
        return out

    def _upsert(self, guild_id: int | None, definition: JSON) -> CommandRecord:
        scope = self._scopes.setdefault(guild_id, {})
        key = (str(definition["name"]), int(definition.get("type") or 1))
        existing = scope.get(key)
        record = CommandRecord(
            id=existing.id if existing is not None else self.world.new_id(),
            guild_id=guild_id,
            version=self.world.new_id(),
            definition=dict(definition),
        )
        scope[key] = record
        return record

    async def overwrite(self, guild_id: int | None, definitions: list[JSON]) -> list[CommandRecord]:
        old = self._scopes.get(guild_id, {})
        kept: dict[tuple[str, int], CommandRecord] = {}
        for definition in definitions:
            key = (str(definition["name"]), int(definition.get("type") or 1))
            previous = old.get(key)
            record = CommandRecord(
                id=previous.id if previous is not None else self.world.new_id(),
                guild_id=guild_id,
                version=self.world.new_id(),
                definition=dict(definition),
            )
            kept[key] = record
        self._scopes[guild_id] = kept
        await self._notify()
        return list(kept.values())

    async def create(self, guild_id: int | None, definition: JSON) -> CommandRecord:
        record = self._upsert(guild_id, definition)
        await self._notify()
        return record

    async def delete(self, guild_id: int | None, command_id: int) -> bool:
        scope = self._scopes.get(guild_id, {})
        for key, record in list(scope.items()):
            if record.id == command_id:
                del scope[key]
                await self._notify()
                return True
        return False

    def find(self, name: str, guild_id: int | None) -> CommandRecord | None:
        """A chat-input command by name: the guild's own first, then global (as Discord shows them)."""
        for scope in (guild_id, None):
            record = self._scopes.get(scope, {}).get((name, 1))
            if record is not None:
                return record
        return None

    def invocation_problem(self, path: str, options: Mapping[str, Any], guild_id: int) -> str | None:
        """Why `path` with `options` is not a command the bot registered, naming what is valid; None when it is.

        Discord's client only offers registered commands and options; a person driving the sandbox by hand can
        type anything, and an unknown name must be answered at once, not by waiting for a reply that never comes.
        """
        registered = sorted({r.name for scope in (guild_id, None) for r in self.records(scope) if r.type == 1})
        parts = path.split()
        if not parts:
            return "the command name is empty"
        record = self.find(parts[0], guild_id)
        if record is None:
            return f"unknown command {parts[0]!r}; the bot has registered: {', '.join(registered) or 'nothing yet'}"
        current: list[JSON] = list(record.definition.get("options") or [])
        walked = [parts[0]]
        for name in [*parts[1:], None]:
            subs = [d for d in current if int(d.get("type", 0)) in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)]
            if name is None:
                if subs:
                    names = ", ".join(sorted(str(d["name"]) for d in subs))
                    return f"/{' '.join(walked)} needs a subcommand: {names}"
                break
            match = next((d for d in subs if d.get("name") == name), None)
            if match is None:
                names = ", ".join(sorted(str(d["name"]) for d in subs)) or "none"
                return f"unknown subcommand {name!r} of /{' '.join(walked)}; valid: {names}"
            walked.append(name)
            current = list(match.get("options") or [])
        valid = sorted(str(d["name"]) for d in current)
        unknown = sorted(set(options) - set(valid))
        if unknown:
            return (
                f"unknown option(s) {', '.join(map(repr, unknown))} of /{' '.join(walked)}; "
                f"valid: {', '.join(valid) or 'none'}"
            )
        missing = sorted(str(d["name"]) for d in current if d.get("required") and d["name"] not in options)
        if missing:
            return f"/{' '.join(walked)} needs option(s): {', '.join(missing)}"
        return None

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()


# ---------------------------------------------------------------------------------------------------- interactions


@dataclass(slots=True)
class InteractionRecord:
    """One invocation and everything the bot answered, in order."""

    id: int
    token: str
    guild_id: int
    channel_id: int
    user_id: int
    command_name: str
    payload: JSON
    created_at: float
    seqs: list[int] = field(default_factory=list)
    callback_type: int | None = None
    callback_body: JSON | None = None
    callback_at: float | None = None
    original: Message | None = None
    original_deleted: bool = False
    followups: list[Message] = field(default_factory=list)
    choices: list[JSON] | None = None  # an autocomplete interaction's answer
    log: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        return self.callback_type is not None

    @property
    def deferred(self) -> bool:
        return self.callback_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE

    @property
    def ack_seconds(self) -> float | None:
        return None if self.callback_at is None else self.callback_at - self.created_at

    @property
    def loading(self) -> bool:
        return (
            self.original is not None and not self.original_deleted and bool(self.original.flags & MessageFlag.LOADING)
        )

    @property
    def ephemeral(self) -> bool:
        """Whether the visible answer (the original response, else the first follow-up) is ephemeral."""
        message = self.response_message
        return message.is_ephemeral if message is not None else False

    @property
    def response_message(self) -> Message | None:
        """The message a user sees as the answer: the original response unless deleted, else the last follow-up."""
        if self.original is not None and not self.original_deleted:
            return self.original
        return self.followups[-1] if self.followups else None

    @property
    def content(self) -> str | None:
        message = self.response_message
        return message.content if message is not None else None

    @property
    def embeds(self) -> list[JSON]:
        message = self.response_message
        return list(message.embeds) if message is not None else []

    @property
    def is_autocomplete(self) -> bool:
        return int(self.payload["type"]) == INTERACTION_AUTOCOMPLETE

    @property
    def complete(self) -> bool:
        """The bot has given a final answer: a message response, or a deferral followed by an edit or follow-up."""
        if self.callback_type == CALLBACK_AUTOCOMPLETE_RESULT:
            return True
        if self.callback_type in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_MODAL, CALLBACK_UPDATE_MESSAGE):
            return True
        if self.callback_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            return bool(self.followups) or (self.original is not None and not self.loading)
        return False


class InteractionsApi:
    """Interaction state plus the callback and webhook routes."""

    def __init__(
        self,
        world: World,
        events: WorldEvents,
        commands: CommandStore,
        *,
        ack_timeout_s: float = 3.0,
        token_ttl_s: float = 15 * 60,
    ) -> None:
        self.world = world
        self.events = events
        self.commands = commands
        self.ack_timeout_s = ack_timeout_s
        self.token_ttl_s = token_ttl_s
        self.interactions: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}
        self._changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    # ------------------------------------------------------------------------------------------------ invoke

    def build_options(
        self, guild: Guild, definitions: list[JSON], values: Mapping[str, Any], resolved: dict[str, JSON]
    ) -> list[JSON]:
        """Interaction option objects for `values`, typed by the registered option definitions."""
        by_name = {str(d["name"]): d for d in definitions}
        options: list[JSON] = []
        for name, value in values.items():
            definition = by_name.get(name)
            kind = int(definition["type"]) if definition is not None else _infer_option_type(value)
            options.append({"name": name, "type": kind, "value": self._option_value(guild, kind, value, resolved)})
        return options

    def _option_value(self, guild: Guild, kind: int, value: Any, resolved: dict[str, JSON]) -> Any:
        if kind in (OPTION_USER, OPTION_MENTIONABLE) and int(value) in self.world.users:
            user_id = int(value)
            resolved.setdefault("users", {})[str(user_id)] = payloads.user_payload(self.world.user(user_id))
            member = guild.members.get(user_id)
            if member is not None:
                member_json = payloads.interaction_member_payload(self.world, guild, member)
                member_json.pop("user")
                resolved.setdefault("members", {})[str(user_id)] = member_json
            return str(user_id)
        if kind in (OPTION_ROLE, OPTION_MENTIONABLE) and int(value) in guild.roles:
            resolved.setdefault("roles", {})[str(value)] = payloads.role_payload(guild.roles[int(value)])
            return str(int(value))
        if kind == OPTION_CHANNEL:
            channel = guild.channels[int(value)]
            data = payloads.channel_payload(channel)
            data["permissions"] = str(guild.channel_permissions(self.world.bot_user_id, channel))
            resolved.setdefault("channels", {})[str(channel.id)] = data
            return str(channel.id)
        if kind == OPTION_INTEGER:
            return int(value)
        if kind == OPTION_NUMBER:
            return float(value)
        if kind == OPTION_BOOLEAN:
            return bool(value)
        return str(value)

    async def wait_for_command(self, name: str, guild_id: int, timeout: float) -> CommandRecord:
        """The registered command `name`, waiting for the bot to register it (it syncs after connecting)."""
        async with asyncio.timeout(timeout), self.commands.changed:
            while (record := self.commands.find(name, guild_id)) is None:
                await self.commands.changed.wait()
            return record

    async def dispatch_command(
        self,
        path: str,
        *,
        guild: Guild,
        channel_id: int,
        user_id: int,
        options: Mapping[str, Any],
        locale: str = "en-US",
        timeout: float = 5.0,
        focused: str | None = None,
    ) -> InteractionRecord:
        """Dispatch INTERACTION_CREATE for chat-input command `path` ("name" or "group sub" or "group sub sub").

        With `focused`, it is an autocomplete interaction instead: that option carries `focused: true` and the
        partial text typed so far (always a string, as Discord sends it), and only an autocomplete result answers.
        """
        parts = path.split()
        if not parts:
            raise ValueError("empty command name")
        record = await self.wait_for_command(parts[0], guild.id, timeout)
        channel = guild.channels[channel_id]
        member = guild.members.get(user_id)
        if member is None:
            raise LookupError(f"user {user_id} is not a member of guild {guild.id}")
        definitions: list[JSON] = list(record.definition.get("options") or [])
        resolved: dict[str, JSON] = {}
        leaf: list[JSON] = self.build_options(guild, _leaf_definitions(definitions, parts[1:]), options, resolved)
        if focused is not None:
            for option in leaf:
                if option["name"] == focused:
                    option["focused"] = True
                    option["value"] = str(options[focused])
        nested = leaf
        for sub in reversed(parts[1:]):
            sub_def = next((d for d in _flatten_subcommands(definitions) if d.get("name") == sub), None)
            sub_type = int(sub_def["type"]) if sub_def is not None else OPTION_SUB_COMMAND
            nested = [{"name": sub, "type": sub_type, "options": nested}]
        interaction_id = self.world.new_id()
        token = "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)
        data: JSON = {"id": str(record.id), "name": record.name, "type": 1}
        if nested:
            data["options"] = nested
        if resolved:
            data["resolved"] = resolved
        if record.guild_id is not None:
            data["guild_id"] = str(record.guild_id)
        permissions = guild.channel_permissions(user_id, channel)
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.world.application_id),
            "type": INTERACTION_AUTOCOMPLETE if focused is not None else INTERACTION_COMMAND,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.preferred_locale, "features": list(guild.features)},
            "channel_id": str(channel.id),
            "channel": payloads.partial_channel_payload(guild, channel, permissions),
            "member": payloads.interaction_member_payload(self.world, guild, member),
            "token": token,
            "version": 1,
            "app_permissions": str(guild.channel_permissions(self.world.bot_user_id, channel)),
            "locale": locale,
            "guild_locale": guild.preferred_locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": payloads.ATTACHMENT_SIZE_LIMIT,
        }
        interaction = InteractionRecord(
            id=interaction_id,
            token=token,
            guild_id=guild.id,
            channel_id=channel.id,
            user_id=user_id,
            command_name=path,
            payload=payload,
            created_at=time.monotonic(),
        )
        self.interactions[interaction_id] = interaction
        self._by_token[token] = interaction
        interaction.seqs = await self.events.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id)
        return interaction

    async def wait_until(
        self, interaction: InteractionRecord, predicate: Callable[[InteractionRecord], bool], timeout: float
    ) -> InteractionRecord:
        try:
            async with asyncio.timeout(timeout), self._changed:
                while not predicate(interaction):
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"interaction {interaction.command_name!r} not answered as expected within {timeout}s; "
                f"so far: {interaction.log or ['nothing']}; rejected: {interaction.rejected or ['nothing']}"
            ) from None
        return interaction

    # ------------------------------------------------------------------------------------------------ routes

    def add_routes(self, app: web.Application, base: str) -> None:
        app.router.add_post(base + "/interactions/{interaction_id}/{token}/callback", self.callback)
        hook = base + "/webhooks/{application_id}/{token}"
        app.router.add_post(hook, self.followup)
        app.router.add_get(hook + "/messages/@original", self.get_original)
        app.router.add_patch(hook + "/messages/@original", self.edit_original)
        app.router.add_delete(hook + "/messages/@original", self.delete_original)
        app.router.add_get(hook + "/messages/{message_id}", self.get_followup)
        app.router.add_patch(hook + "/messages/{message_id}", self.edit_followup)
        app.router.add_delete(hook + "/messages/{message_id}", self.delete_followup)

    async def _reject(self, interaction: InteractionRecord | None, response: web.Response, why: str) -> web.Response:
        """Answer with an error and note on the interaction that the bot's call was refused (and why)."""
        if interaction is not None:
            interaction.rejected.append(why)
            await self._notify()
        return response

    async def callback(self, request: web.Request) -> web.Response:
        try:
            interaction = self.interactions.get(int(request.match_info["interaction_id"]))
        except ValueError:
            interaction = None
        if interaction is None or interaction.token != request.match_info["token"]:
            return discord_error(404, 10062, "Unknown interaction")
        if interaction.acknowledged:
            return await self._reject(
                interaction, discord_error(400, 40060, "Interaction has already been acknowledged."), "second ack"
            )
        if time.monotonic() - interaction.created_at > self.ack_timeout_s:
            return await self._reject(interaction, discord_error(404, 10062, "Unknown interaction"), "ack too late")
        body = body_of(request).json
        if not isinstance(body, dict) or "type" not in body:
            return await self._reject(interaction, _form_error("type", "This field is required"), "no type")
        kind = int(body["type"])
        data: JSON = body.get("data") or {}
        if interaction.is_autocomplete:
            return await self._autocomplete_result(interaction, kind, data, request)
        if kind in (CALLBACK_DEFERRED_UPDATE_MESSAGE, CALLBACK_UPDATE_MESSAGE, CALLBACK_AUTOCOMPLETE_RESULT):
            return await self._reject(
                interaction, _form_error("type", "Invalid interaction response type"), f"bad type {kind}"
            )
        if kind not in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_DEFERRED_CHANNEL_MESSAGE, CALLBACK_MODAL):
            return await self._reject(interaction, _form_error("type", "Value is not a valid enum"), f"bad type {kind}")
        if kind == CALLBACK_CHANNEL_MESSAGE and not _has_message_content(data, body_of(request).files):
            return await self._reject(interaction, discord_error(400, 50006, "Cannot send an empty message"), "empty")
        interaction.callback_type = kind
        interaction.callback_body = body
        interaction.callback_at = time.monotonic()
        interaction.log.append(f"callback:{kind}")
        message: Message | None = None
        if kind == CALLBACK_CHANNEL_MESSAGE:
            message = await self._post(interaction, data, request, flags=int(data.get("flags") or 0))
            interaction.original = message
        elif kind == CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            flags = int(MessageFlag.LOADING) | (int(data.get("flags") or 0) & int(MessageFlag.EPHEMERAL))
            message = await self._post(interaction, {}, request, flags=flags)
            interaction.original = message
        await self._notify()
        if request.query.get("with_response", "").lower() not in ("true", "1"):
            return web.Response(status=204)
        response: JSON = {
            "interaction": {
                "id": str(interaction.id),
                "type": 2,
                "response_message_loading": kind == CALLBACK_DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(message is not None and message.is_ephemeral),
            },
            "resource": {"type": kind},
        }
        if message is not None:
            response["interaction"]["response_message_id"] = str(message.id)
            response["resource"]["message"] = payloads.message_payload(self.world, message)
        return web.json_response(response)

    async def _autocomplete_result(
        self, interaction: InteractionRecord, kind: int, data: JSON, request: web.Request
    ) -> web.Response:
        """An autocomplete interaction takes only a result: at most 25 choices, names 1–100 and values ≤ 100."""
        choices = data.get("choices")
        if kind != CALLBACK_AUTOCOMPLETE_RESULT:
            return await self._reject(interaction, _form_error("type", "Invalid interaction response type"), "bad type")
        if not isinstance(choices, list) or len(choices) > 25:
            return await self._reject(interaction, _form_error("choices", "Must be 25 or fewer in length."), "choices")
        for choice in choices:
            name, value = choice.get("name"), choice.get("value")
            if not isinstance(name, str) or not 1 <= len(name) <= 100 or len(str(value)) > 100:
                return await self._reject(interaction, _form_error("choices", "Invalid choice"), "choice")
        interaction.callback_type = kind
        interaction.callback_body = {"type": kind, "data": data}
        interaction.callback_at = time.monotonic()
        interaction.choices = list(choices)
        interaction.log.append(f"callback:{kind}")
        await self._notify()
        if request.query.get("with_response", "").lower() not in ("true", "1"):
            return web.Response(status=204)
        return web.json_response(
            {
                "interaction": {"id": str(interaction.id), "type": INTERACTION_AUTOCOMPLETE},
                "resource": {"type": kind},
            }
        )

    async def _post(self, interaction: InteractionRecord, data: JSON, request: web.Request, *, flags: int) -> Message:
        message, _seqs = await self.events.create_message(
            channel_id=interaction.channel_id,
            author_id=self.world.bot_user_id,
            content=str(data.get("content") or ""),
            embeds=list(data.get("embeds") or []),
            components=list(data.get("components") or []),
            allowed_mentions=data.get("allowed_mentions"),
            attachments=self._attachments(interaction, request),
            flags=flags,
            message_type=MessageType.CHAT_INPUT_COMMAND,
            webhook_id=self.world.application_id,
            application_id=self.world.application_id,
            interaction=(interaction.id, interaction.user_id, interaction.command_name.split()[0]),
            tts=bool(data.get("tts", False)),
        )
        return message

    def _attachments(self, interaction: InteractionRecord, request: web.Request) -> list[Attachment]:
        return [
            Attachment(
                id=self.world.new_id(),
                filename=f.filename or "file",
                size=f.size,
                url=f"{CDN_URL}/attachments/{interaction.channel_id}/{interaction.id}/{f.filename}",
                content_type=f.content_type or "application/octet-stream",
            )
            for f in body_of(request).files
        ]

    async def _by_webhook(self, request: web.Request) -> tuple[InteractionRecord | None, web.Response | None]:
        try:
            application_id = int(request.match_info["application_id"])
        except ValueError:
            return None, discord_error(404, 10015, "Unknown Webhook")
        interaction = self._by_token.get(request.match_info["token"])
        if interaction is None or application_id != self.world.application_id:
            return None, discord_error(404, 10015, "Unknown Webhook")
        if time.monotonic() - interaction.created_at > self.token_ttl_s:
            return None, discord_error(401, 50027, "Invalid Webhook Token")
        if not interaction.acknowledged:
            return None, await self._reject(
                interaction, discord_error(404, 10015, "Unknown Webhook"), "not acknowledged"
            )
        return interaction, None

    def _message_of(self, interaction: InteractionRecord, raw_id: str) -> Message | None:
        if raw_id == "@original":
            return interaction.original if not interaction.original_deleted else None
        try:
            wanted = int(raw_id)
        except ValueError:
            return None
        for message in [interaction.original, *interaction.followups]:
            if message is not None and message.id == wanted and not message.deleted:
                return message
        return None

    async def get_original(self, request: web.Request) -> web.Response:
        return await self._get(request, "@original")

    async def get_followup(self, request: web.Request) -> web.Response:
        return await self._get(request, request.match_info["message_id"])

    async def _get(self, request: web.Request, raw_id: str) -> web.Response:
        interaction, error = await self._by_webhook(request)
        if interaction is None:
            return error or discord_error(404, 10015, "Unknown Webhook")
        message = self._message_of(interaction, raw_id)
        if message is None:
            return discord_error(404, 10008, "Unknown Message")
        return web.json_response(payloads.message_payload(self.world, message))

    async def edit_original(self, request: web.Request) -> web.Response:
        return await self._edit(request, "@original")

    async def edit_followup(self, request: web.Request) -> web.Response:
        return await self._edit(request, request.match_info["message_id"])

    async def _edit(self, request: web.Request, raw_id: str) -> web.Response:
        interaction, error = await self._by_webhook(request)
        if interaction is None:
            return error or discord_error(404, 10015, "Unknown Webhook")
        message = self._message_of(interaction, raw_id)
        if message is None:
            return await self._reject(interaction, discord_error(404, 10008, "Unknown Message"), f"edit {raw_id}")
        body = body_of(request).json
        changes: JSON = dict(body) if isinstance(body, dict) else {}
        message.attachments.extend(self._attachments(interaction, request))
        await self.events.edit_message(message, changes)
        interaction.log.append("edit:original" if message is interaction.original else f"edit:{message.id}")
        await self._notify()
        return web.json_response(payloads.message_payload(self.world, message))

    async def delete_original(self, request: web.Request) -> web.Response:
        return await self._delete(request, "@original")

    async def delete_followup(self, request: web.Request) -> web.Response:
        return await self._delete(request, request.match_info["message_id"])

    async def _delete(self, request: web.Request, raw_id: str) -> web.Response:
        interaction, error = await self._by_webhook(request)
        if interaction is None:
            return error or discord_error(404, 10015, "Unknown Webhook")
        message = self._message_of(interaction, raw_id)
        if message is None:
            return await self._reject(interaction, discord_error(404, 10008, "Unknown Message"), f"delete {raw_id}")
        await self.events.delete_message(message)
        if message is interaction.original:
            interaction.original_deleted = True
            interaction.log.append("delete:original")
        else:
            interaction.log.append(f"delete:{message.id}")
        await self._notify()
        return web.Response(status=204)

    async def followup(self, request: web.Request) -> web.Response:
        interaction, error = await self._by_webhook(request)
        if interaction is None:
            return error or discord_error(404, 10015, "Unknown Webhook")
        body = body_of(request).json
        data: JSON = dict(body) if isinstance(body, dict) else {}
        if not _has_message_content(data, body_of(request).files):
            return await self._reject(interaction, discord_error(400, 50006, "Cannot send an empty message"), "empty")
        if interaction.loading and interaction.original is not None:
            # Discord: the first follow-up after a deferral replaces the "thinking" message (keeping its
            # visibility), rather than posting a new message.
            message = interaction.original
            await self.events.edit_message(message, {k: v for k, v in data.items() if k != "flags"})
            interaction.log.append("followup:original")
        else:
            message = await self._post(interaction, data, request, flags=int(data.get("flags") or 0))
            interaction.followups.append(message)
            interaction.log.append(f"followup:{message.id}")
        await self._notify()
        if request.query.get("wait", "").lower() not in ("true", "1"):
            return web.Response(status=204)
        return web.json_response(payloads.message_payload(self.world, message))


def _has_message_content(data: JSON, files: list[Any]) -> bool:
    return bool(data.get("content") or data.get("embeds") or data.get("components") or data.get("poll") or files)


def _form_error(field_name: str, message: str) -> web.Response:
    return discord_error(
        400,
        50035,
        "Invalid Form Body",
        {field_name: {"_errors": [{"code": "BASE_TYPE_INVALID", "message": message}]}},
    )


def _infer_option_type(value: Any) -> int:
    if isinstance(value, bool):
        return OPTION_BOOLEAN
    if isinstance(value, int):
        return OPTION_INTEGER
    if isinstance(value, float):
        return OPTION_NUMBER
    return OPTION_STRING


def _flatten_subcommands(definitions: list[JSON]) -> list[JSON]:
    out: list[JSON] = []
    for definition in definitions:
        if int(definition.get("type", 0)) in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP):
            out.append(definition)
            out.extend(_flatten_subcommands(list(definition.get("options") or [])))
    return out


def _leaf_definitions(definitions: list[JSON], path: list[str]) -> list[JSON]:
    current = definitions
    for name in path:
        match = next((d for d in current if d.get("name") == name), None)
        if match is None:
            return []
        current = list(match.get("options") or [])
    return current
