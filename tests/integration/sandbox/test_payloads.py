"""Every payload shape the simulator emits, parsed by hikari's real entity factory (no bot connection needed).

The integration tests prove the common path end to end; this catches shapes for entities the integration tests do
not listen for (stage, media, announcement threads, private threads, replies, custom-emoji reactions…), because
hikari only parses an event when something listens for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import hikari
import pytest

from synapse_async.sandbox import DiscordSimulator, payloads
from synapse_async.sandbox.world import (
    CHANNEL_GENERAL_ID,
    CHANNEL_SHOWCASE_ID,
    SANDBOX_BOT_ID,
    SANDBOX_FIRST_MEMBER_ID,
    SANDBOX_GUILD_ID,
    Attachment,
    Channel,
    ChannelType,
    Emoji,
    Message,
    MessageType,
    VoiceState,
    build_sandbox_world,
)


@pytest.fixture
def factory() -> hikari.api.EntityFactory:
    """The entity factory of a real (unstarted) GatewayBot."""
    sim = DiscordSimulator(members=3, seed=7)
    bot = hikari.GatewayBot(token=sim.token, banner=None, logs=None, suppress_optimization_warning=True)
    return bot.entity_factory


WORLD = build_sandbox_world(members=3, seed=7)
GUILD = WORLD.guilds[SANDBOX_GUILD_ID]
NOW = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ChannelType.TEXT, hikari.GuildTextChannel),
        (ChannelType.ANNOUNCEMENT, hikari.GuildNewsChannel),
        (ChannelType.VOICE, hikari.GuildVoiceChannel),
        (ChannelType.STAGE, hikari.GuildStageChannel),
        (ChannelType.CATEGORY, hikari.GuildCategory),
        (ChannelType.FORUM, hikari.GuildForumChannel),
        (ChannelType.MEDIA, hikari.GuildMediaChannel),
    ],
)
def test_channels(factory: hikari.api.EntityFactory, kind: ChannelType, expected: type[object]) -> None:
    channel = Channel(id=5000, guild_id=GUILD.id, type=kind, name="c", parent_id=None, topic="t")
    parsed = factory.deserialize_channel(payloads.channel_payload(channel))
    assert isinstance(parsed, expected)
    assert parsed.id == 5000


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ChannelType.PUBLIC_THREAD, hikari.GuildPublicThread),
        (ChannelType.PRIVATE_THREAD, hikari.GuildPrivateThread),
        (ChannelType.ANNOUNCEMENT_THREAD, hikari.GuildNewsThread),
    ],
)
def test_threads(factory: hikari.api.EntityFactory, kind: ChannelType, expected: type[object]) -> None:
    thread = Channel(
        id=6000,
        guild_id=GUILD.id,
        type=kind,
        name="t",
        parent_id=CHANNEL_GENERAL_ID,
        owner_id=SANDBOX_FIRST_MEMBER_ID,
        created_at=NOW,
        member_ids={SANDBOX_FIRST_MEMBER_ID},
    )
    payload = payloads.thread_payload(thread, newly_created=True, bot_member_since=NOW, bot_user_id=SANDBOX_BOT_ID)
    parsed = factory.deserialize_guild_thread(payload)
    assert isinstance(parsed, expected)
    assert parsed.owner_id == SANDBOX_FIRST_MEMBER_ID
    assert parsed.metadata.created_at == NOW
    assert parsed.parent_id == CHANNEL_GENERAL_ID


def test_members_roles_voice_users(factory: hikari.api.EntityFactory) -> None:
    member = GUILD.members[SANDBOX_FIRST_MEMBER_ID]
    parsed = factory.deserialize_member(payloads.member_payload(WORLD, GUILD, member), guild_id=GUILD.id)
    assert parsed.id == SANDBOX_FIRST_MEMBER_ID
    assert parsed.joined_at == member.joined_at
    for role in GUILD.roles.values():
        assert factory.deserialize_role(payloads.role_payload(role), guild_id=GUILD.id).id == role.id
    state = VoiceState(user_id=SANDBOX_FIRST_MEMBER_ID, channel_id=CHANNEL_GENERAL_ID, session_id="s")
    voice = factory.deserialize_voice_state(payloads.voice_state_payload(WORLD, GUILD, state, channel_id=None))
    assert voice.channel_id is None
    assert voice.member is not None
    me = factory.deserialize_my_user(payloads.own_user_payload(WORLD.bot_user))
    assert me.is_bot


def test_messages(factory: hikari.api.EntityFactory) -> None:
    original = Message(
        id=7000,
        channel_id=CHANNEL_GENERAL_ID,
        guild_id=GUILD.id,
        author_id=SANDBOX_FIRST_MEMBER_ID,
        content="hello",
        timestamp=NOW,
    )
    WORLD.messages[original.id] = original
    reply = Message(
        id=7001,
        channel_id=CHANNEL_GENERAL_ID,
        guild_id=GUILD.id,
        author_id=SANDBOX_BOT_ID,
        content=f"<@{SANDBOX_FIRST_MEMBER_ID}> hi",
        timestamp=NOW,
        type=MessageType.REPLY,
        reply_to=original.id,
        attachments=[Attachment(id=1, filename="a.png", size=3, url="https://cdn.discordapp.com/a.png")],
        embeds=[{"title": "t", "description": "d"}],
        mention_user_ids=[SANDBOX_FIRST_MEMBER_ID],
        interaction_id=9,
        interaction_user_id=SANDBOX_FIRST_MEMBER_ID,
        interaction_name="profile",
        webhook_id=SANDBOX_BOT_ID,
        application_id=SANDBOX_BOT_ID,
        reactions={"1": {SANDBOX_BOT_ID}},
        reaction_emojis={"1": Emoji(name="party", id=1)},
    )
    parsed = factory.deserialize_message(payloads.message_payload(WORLD, reply))
    assert parsed.referenced_message is not None
    assert parsed.referenced_message.id == original.id
    assert parsed.embeds[0].title == "t"
    assert parsed.attachments[0].filename == "a.png"
    assert SANDBOX_FIRST_MEMBER_ID in parsed.user_mentions
    assert parsed.interaction_metadata is not None
    assert parsed.reactions[0].is_me
    partial = factory.deserialize_partial_message(payloads.message_payload(WORLD, reply))
    assert partial.id == reply.id


def test_guild_payloads(factory: hikari.api.EntityFactory) -> None:
    rest = factory.deserialize_rest_guild(payloads.rest_guild_payload(WORLD, GUILD, with_counts=True))
    assert rest.name == "Sandbox"
    assert rest.approximate_member_count == len(GUILD.members)
    gateway_payload = payloads.guild_create_payload(
        WORLD, GUILD, available=True, include_all_members=True, large_threshold=250
    )
    definition = factory.deserialize_gateway_guild(gateway_payload, user_id=hikari.Snowflake(SANDBOX_BOT_ID))
    assert len(definition.members()) == len(GUILD.members)
    assert CHANNEL_SHOWCASE_ID in definition.channels()
    own = factory.deserialize_own_guild(payloads.own_guild_payload(GUILD, SANDBOX_FIRST_MEMBER_ID, with_counts=True))
    assert not own.is_owner
    application = factory.deserialize_application(payloads.application_payload(WORLD, verify_key="00" * 32))
    assert application.id == WORLD.application_id
