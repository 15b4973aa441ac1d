"""What a person driving the sandbox by hand needs to see beyond the world itself (SPEC §30, the `/sandbox` page).

Two summaries for `GET /sandbox/state`: the slash commands the bot registered, flattened to the paths a member can
type (`profile`, `season start`) with their options' types, so a form can offer exactly what Discord's client would
offer; and the guild's recent messages with their reactions, so a person can react to them as a member.
"""

from __future__ import annotations

from typing import Any

from synapse_async.sandbox.interactions import (
    OPTION_SUB_COMMAND,
    OPTION_SUB_COMMAND_GROUP,
    CommandStore,
)
from synapse_async.sandbox.world import Message, World

JSON = dict[str, Any]

OPTION_TYPES = {
    3: "string",
    4: "integer",
    5: "boolean",
    6: "user",
    7: "channel",
    8: "role",
    9: "mentionable",
    10: "number",
    11: "attachment",
}


def command_catalogue(commands: CommandStore, guild_id: int) -> list[JSON]:
    """Every chat-input command path the bot registered for `guild_id` (its own commands shadow global ones of the
    same name, as Discord shows them), sorted, each with its options: name, type, required, description, choices."""
    records = {r.name: r for r in commands.records(None) if r.type == 1}
    records |= {r.name: r for r in commands.records(guild_id) if r.type == 1}
    paths: list[JSON] = []
    for name in sorted(records):
        definition = records[name].definition
        _walk([name], str(definition.get("description") or ""), list(definition.get("options") or []), paths)
    return paths


def _walk(path: list[str], description: str, options: list[JSON], out: list[JSON]) -> None:
    subs = [o for o in options if int(o.get("type", 0)) in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP)]
    if subs:
        for sub in sorted(subs, key=lambda o: str(o["name"])):
            _walk([*path, str(sub["name"])], str(sub.get("description") or ""), list(sub.get("options") or []), out)
        return
    out.append(
        {
            "path": " ".join(path),
            "description": description,
            "options": [
                {
                    "name": str(o["name"]),
                    "type": OPTION_TYPES.get(int(o.get("type", 3)), "string"),
                    "required": bool(o.get("required", False)),
                    "description": str(o.get("description") or ""),
                    "choices": [{"name": str(c["name"]), "value": c["value"]} for c in o.get("choices") or []],
                }
                for o in options
            ],
        }
    )


def recent_messages(world: World, guild_id: int, limit: int = 30) -> list[JSON]:
    """The guild's last `limit` visible messages (not deleted, not ephemeral), oldest first, with their reactions
    (emoji, count, who) and the author's display name."""
    guild = world.guilds.get(guild_id)
    if guild is None:
        return []
    shown = [
        m
        for m in world.messages.values()
        if m.guild_id == guild_id and not m.deleted and not m.is_ephemeral and m.channel_id in guild.channels
    ]
    shown.sort(key=lambda m: m.id)
    out: list[JSON] = []
    for message in shown[-limit:]:
        member = guild.members.get(message.author_id)
        user = world.users.get(message.author_id)
        name = (member.nick if member is not None else None) or (user.display_name if user else str(message.author_id))
        out.append(
            {
                "id": str(message.id),
                "channel_id": str(message.channel_id),
                "author_id": str(message.author_id),
                "author_name": name,
                "bot": bool(user.bot) if user is not None else False,
                "content": message.content,
                "embeds": len(message.embeds),
                "timestamp": message.timestamp.isoformat(),
                "reactions": [
                    {
                        "emoji": _emoji(message, key),
                        "count": len(users),
                        "user_ids": sorted(str(u) for u in users),
                    }
                    for key, users in message.reactions.items()
                    if users
                ],
            }
        )
    return out


def _emoji(message: Message, key: str) -> str:
    """What `POST /sandbox/reactions` takes back: the character itself, or `name:id` for a custom emoji."""
    emoji = message.reaction_emojis.get(key)
    return key if emoji is None or emoji.id is None else f"{emoji.name}:{emoji.id}"
