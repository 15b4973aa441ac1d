"""What `GET /sandbox/state` tells the `/sandbox` page (sandbox/console.py): pure summaries of the simulated world."""

from __future__ import annotations

from datetime import UTC, datetime

from synapse_async.sandbox.console import command_catalogue, recent_messages
from synapse_async.sandbox.interactions import CommandStore
from synapse_async.sandbox.world import Emoji, Message, MessageFlag, build_sandbox_world

SEASON = {
    "name": "season",
    "description": "Seasons",
    "options": [
        {
            "type": 1,
            "name": "start",
            "description": "Start one",
            "options": [{"type": 3, "name": "name", "required": True}],
        },
        {
            "type": 2,
            "name": "rules",
            "options": [{"type": 1, "name": "show", "description": "Show", "options": []}],
        },
    ],
}
PROFILE = {"name": "profile", "description": "Yours", "options": [{"type": 6, "name": "member"}]}
PREFERENCES = {
    "name": "preferences",
    "description": "Choose",
    "options": [
        {
            "type": 3,
            "name": "value",
            "required": True,
            "choices": [{"name": "on", "value": "on"}, {"name": "off", "value": "off"}],
        }
    ],
}


async def test_commands_are_flattened_to_the_paths_a_member_types_with_typed_options() -> None:
    world = build_sandbox_world(members=3)
    guild = min(world.guilds)
    store = CommandStore(world)
    await store.overwrite(None, [PROFILE, {**PREFERENCES, "description": "global one"}])
    await store.overwrite(guild, [SEASON, PREFERENCES, {"name": "Report", "type": 3}])  # a message command: not typed
    paths = {c["path"]: c for c in command_catalogue(store, guild)}
    assert list(paths) == ["preferences", "profile", "season rules show", "season start"]
    assert paths["preferences"]["description"] == "Choose"  # the guild's own command shadows the global one
    assert paths["profile"]["options"] == [
        {"name": "member", "type": "user", "required": False, "description": "", "choices": []}
    ]
    assert paths["season start"]["options"][0] == {
        "name": "name",
        "type": "string",
        "required": True,
        "description": "",
        "choices": [],
    }
    assert [c["value"] for c in paths["preferences"]["options"][0]["choices"]] == ["on", "off"]
    assert paths["season rules show"]["options"] == []


def test_recent_messages_hide_ephemeral_and_deleted_ones_and_say_who_reacted() -> None:
    world = build_sandbox_world(members=3)
    guild = world.guilds[min(world.guilds)]
    channel = next(iter(guild.channels.values()))
    member = next(m for m in guild.members if not world.user(m).bot)

    def post(content: str, **kw: object) -> Message:
        message = Message(world.new_id(), channel.id, guild.id, member, content, datetime.now(UTC), **kw)  # type: ignore[arg-type]
        world.messages[message.id] = message
        return message

    shown = post("hello")
    shown.reactions = {"⭐": {member}, "123": {member}, "👍": set()}
    shown.reaction_emojis = {"⭐": Emoji("⭐"), "123": Emoji("party", 123)}
    post("only you", flags=int(MessageFlag.EPHEMERAL))
    post("gone", deleted=True)
    recent = recent_messages(world, guild.id)
    assert [m["content"] for m in recent] == ["hello"]
    assert recent[0]["reactions"] == [
        {"emoji": "⭐", "count": 1, "user_ids": [str(member)]},
        {"emoji": "party:123", "count": 1, "user_ids": [str(member)]},
    ]
    assert recent[0]["author_name"] and recent[0]["bot"] is False
    assert recent_messages(world, 1) == []
