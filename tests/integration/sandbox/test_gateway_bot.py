"""A real hikari GatewayBot against the simulator: handshake, cache, every dispatch type, resume and shutdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import hikari

from synapse_async.sandbox import SANDBOX_BOT_ID, SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, DiscordSimulator
from synapse_async.sandbox.world import CHANNEL_AFK_ID, CHANNEL_GENERAL_ID, CHANNEL_LOUNGE_ID, snowflake_time

from .conftest import INTENTS, EventLog, make_bot, running

ALICE = SANDBOX_FIRST_MEMBER_ID
BOB = SANDBOX_FIRST_MEMBER_ID + 1


async def test_ready_guild_and_cache(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    await sim.voice(BOB, "Lounge", self_mute=True)
    log = EventLog(bot, hikari.ShardReadyEvent, hikari.GuildAvailableEvent, hikari.MemberChunkEvent)
    async with running(bot, sim):
        ready = (await log.wait_for(hikari.ShardReadyEvent))[0]
        assert ready.my_user.id == SANDBOX_BOT_ID
        assert ready.unavailable_guilds == [SANDBOX_GUILD_ID]
        available = (await log.wait_for(hikari.GuildAvailableEvent))[0]
        assert available.guild.name == "Sandbox"
        assert available.guild.afk_channel_id == CHANNEL_AFK_ID
        # Without the presence intent Discord lists only the bot and voice members; hikari chunks the rest.
        assert set(available.members) == {SANDBOX_BOT_ID, BOB}
        await log.wait_for(hikari.MemberChunkEvent)

        guild = bot.cache.get_guild(SANDBOX_GUILD_ID)
        assert guild is not None
        assert guild.owner_id == 100000000000000010
        channels = {c.name: c for c in bot.cache.get_guild_channels_view_for_guild(SANDBOX_GUILD_ID).values()}
        assert set(channels) == {"Community", "general", "help", "showcase", "Lounge", "AFK"}
        assert isinstance(channels["showcase"], hikari.GuildForumChannel)
        assert channels["general"].parent_id == channels["Community"].id
        roles = {r.name for r in bot.cache.get_roles_view_for_guild(SANDBOX_GUILD_ID).values()}
        assert roles == {"@everyone", "Member", "Admin", "Synapse Sandbox"}
        members = bot.cache.get_members_view_for_guild(SANDBOX_GUILD_ID)
        assert len(members) == 22
        assert members[ALICE].username == sim.world.user(ALICE).username
        voice = bot.cache.get_voice_state(SANDBOX_GUILD_ID, BOB)
        assert voice is not None
        assert voice.channel_id == CHANNEL_LOUNGE_ID
        assert voice.is_self_muted

        # What hikari sent: the app's intents, zlib-stream transport compression, heartbeats.
        assert sim.gateway.identify_payloads[0]["intents"] == int(INTENTS)
        connection = sim.gateway.connections[0]
        assert connection.compress == "zlib-stream"
        assert connection.query["v"] == "10"
        assert sim.rest_calls[0].route == "/gateway/bot"
        await sim.gateway.wait_for(lambda: connection.heartbeats >= 1)


async def test_messages_and_deletes(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(
        bot, hikari.GuildMessageCreateEvent, hikari.GuildMessageDeleteEvent, hikari.GuildBulkMessageDeleteEvent
    )
    async with running(bot, sim):
        first = await sim.message(ALICE, "general", "hello **world** https://example.com")
        assert len(first.seqs) == 1
        back = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
        reply = await sim.message(BOB, "help", "answer", attachments=2, reply_to=None, at=back)
        threaded = await sim.message(BOB, "general", f"<@{ALICE}> agreed", reply_to=first)
        events = await log.wait_for(hikari.GuildMessageCreateEvent, count=3)
        by_id = {e.message_id: e for e in events}
        assert by_id[first].content == "hello **world** https://example.com"
        assert by_id[first].author_id == ALICE
        assert by_id[first].channel_id == CHANNEL_GENERAL_ID
        assert len(by_id[reply].message.attachments) == 2
        assert by_id[reply].message.created_at == back
        assert snowflake_time(reply) == back
        replied = by_id[threaded].message
        assert replied.type == hikari.MessageType.REPLY
        assert replied.referenced_message is not None
        assert replied.referenced_message.id == first
        assert ALICE in replied.user_mentions_ids

        await sim.delete_message(first)
        deleted = (await log.wait_for(hikari.GuildMessageDeleteEvent))[0]
        assert deleted.message_id == first
        assert deleted.guild_id == SANDBOX_GUILD_ID
        await sim.delete_messages("general", [threaded, 123456789012345678])
        bulk = (await log.wait_for(hikari.GuildBulkMessageDeleteEvent))[0]
        assert set(bulk.message_ids) == {threaded, 123456789012345678}


async def test_reactions(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.GuildReactionAddEvent, hikari.GuildReactionDeleteEvent)
    async with running(bot, sim):
        message = await sim.message(ALICE, "general", "react to me")
        assert await sim.react(BOB, message, "👍")
        assert await sim.react(BOB, message, "<:party:555>")
        assert await sim.react(BOB, message, "👍") == ()  # already reacted: Discord sends nothing
        added = await log.wait_for(hikari.GuildReactionAddEvent, count=2)
        unicode, custom = added
        assert unicode.emoji_name == "👍"
        assert unicode.emoji_id is None
        assert unicode.user_id == BOB
        assert unicode.message_id == message
        assert unicode.member.id == BOB
        assert custom.emoji_id == 555
        assert custom.emoji_name == "party"
        await sim.react(BOB, message, "👍", remove=True)
        removed = (await log.wait_for(hikari.GuildReactionDeleteEvent))[0]
        assert removed.emoji_name == "👍"
        assert removed.user_id == BOB
        # The raw payload carries the author, as Discord's does (§7.4 step 2).
        session = sim.gateway.live_sessions()[0]
        raw = [r.d for r in session.dispatches("MESSAGE_REACTION_ADD")]
        assert raw[0]["message_author_id"] == str(ALICE)


async def test_channels_threads_and_forums(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(
        bot,
        hikari.GuildChannelCreateEvent,
        hikari.GuildChannelUpdateEvent,
        hikari.GuildChannelDeleteEvent,
        hikari.GuildThreadCreateEvent,
        hikari.GuildThreadAccessEvent,
        hikari.GuildMessageCreateEvent,
    )
    async with running(bot, sim):
        category = await sim.create_category("Events")
        news = await sim.create_channel("news", "announcement", parent=category)
        created = await log.wait_for(hikari.GuildChannelCreateEvent, count=2)
        assert isinstance(created[1].channel, hikari.GuildNewsChannel)
        assert created[1].channel.parent_id == category
        await sim.update_channel(news, topic="Announcements")
        updated = (await log.wait_for(hikari.GuildChannelUpdateEvent))[0]
        assert isinstance(updated.channel, hikari.GuildNewsChannel)
        assert updated.channel.topic == "Announcements"
        await sim.delete_channel(news)
        deleted = (await log.wait_for(hikari.GuildChannelDeleteEvent))[0]
        assert deleted.channel.id == news

        thread = await sim.create_thread("general", ALICE, "plans")
        created_thread = (await log.wait_for(hikari.GuildThreadCreateEvent))[0].thread
        assert created_thread.id == thread
        assert created_thread.owner_id == ALICE
        assert created_thread.parent_id == CHANNEL_GENERAL_ID
        assert created_thread.metadata.created_at is not None

        old = await sim.message(BOB, "general", "start a thread here", at=datetime.now(UTC) - timedelta(days=3))
        from_message = await sim.create_thread("general", BOB, "discussion", from_message=old)
        assert from_message == old  # a thread started from a message shares its snowflake…
        events = await log.wait_for(hikari.GuildThreadCreateEvent, lambda e: e.thread.id == old)
        metadata = events[0].thread.metadata
        assert metadata.created_at is not None
        assert metadata.created_at - snowflake_time(old) > timedelta(days=2)  # …but not its creation time
        # Discord's system messages: THREAD_CREATED in the parent, THREAD_STARTER_MESSAGE opening the thread.
        created_notice = await log.wait_for(
            hikari.GuildMessageCreateEvent, lambda e: e.message.type == hikari.MessageType.THREAD_CREATED
        )
        assert created_notice[0].channel_id == CHANNEL_GENERAL_ID
        starter_notice = await log.wait_for(
            hikari.GuildMessageCreateEvent, lambda e: e.message.type == hikari.MessageType.THREAD_STARTER_MESSAGE
        )
        assert starter_notice[0].channel_id == old
        reference = starter_notice[0].message.message_reference
        assert reference is not None
        assert (reference.id, reference.channel_id) == (old, CHANNEL_GENERAL_ID)

        post = await sim.create_thread("showcase", ALICE, "My project", content="look at this")
        await log.wait_for(hikari.GuildThreadCreateEvent, lambda e: e.thread.id == post)
        starter = await log.wait_for(hikari.GuildMessageCreateEvent, lambda e: e.channel_id == post)
        assert starter[0].message_id == post
        assert starter[0].content == "look at this"
        assert not log.of(hikari.GuildThreadAccessEvent)
        assert bot.cache.get_thread(post) is not None


async def test_voice_states(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.VoiceStateUpdateEvent)
    async with running(bot, sim):
        await sim.voice(ALICE, "Lounge")
        await sim.voice(ALICE, "AFK", self_mute=True, self_deaf=True)
        await sim.voice(ALICE, None)
        join, move, leave = await log.wait_for(hikari.VoiceStateUpdateEvent, count=3)
        assert join.state.channel_id == CHANNEL_LOUNGE_ID
        assert join.old_state is None
        assert join.state.member is not None
        assert move.state.channel_id == CHANNEL_AFK_ID
        assert move.state.is_self_deafened
        assert move.state.is_self_muted
        assert move.old_state is not None
        assert move.old_state.channel_id == CHANNEL_LOUNGE_ID
        assert leave.state.channel_id is None
        assert await sim.voice(ALICE, None) == ()  # not connected: nothing to dispatch


async def test_members_join_update_leave(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.MemberCreateEvent, hikari.MemberUpdateEvent, hikari.MemberDeleteEvent)
    async with running(bot, sim):
        newcomer = await sim.join(username="newcomer", global_name="New Comer")
        joined = (await log.wait_for(hikari.MemberCreateEvent))[0]
        assert joined.member.id == newcomer
        assert joined.member.username == "newcomer"
        assert joined.member.joined_at is not None
        await sim.update_member(newcomer, nick="Newbie", avatar="a" * 32, roles=["Member"])
        updated = (await log.wait_for(hikari.MemberUpdateEvent))[0]
        assert updated.member.nickname == "Newbie"
        assert updated.member.guild_avatar_hash == "a" * 32
        assert sim.role_id("Member") in updated.member.role_ids
        await sim.voice(newcomer, "Lounge")
        seqs = await sim.leave(newcomer)
        assert len(seqs) == 2  # voice disconnect first, then the member removal
        left = (await log.wait_for(hikari.MemberDeleteEvent))[0]
        assert left.user.id == newcomer
        assert left.old_member is not None
        rejoined = await sim.join(newcomer)
        assert rejoined == newcomer
        await log.wait_for(hikari.MemberCreateEvent, count=2)


async def test_roles_and_guild_lifecycle(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(
        bot,
        hikari.RoleCreateEvent,
        hikari.GuildJoinEvent,
        hikari.GuildLeaveEvent,
        hikari.GuildUpdateEvent,
        hikari.GuildUnavailableEvent,
        hikari.GuildAvailableEvent,
    )
    async with running(bot, sim):
        await log.wait_for(hikari.GuildAvailableEvent)
        await sim.update_guild(name="Sandbox 2", afk_channel_id=None)
        renamed = (await log.wait_for(hikari.GuildUpdateEvent))[0]
        assert renamed.guild.name == "Sandbox 2"
        assert renamed.guild.afk_channel_id is None
        assert renamed.old_guild is not None
        assert renamed.old_guild.name == "Sandbox"
        await sim.guild_outage()
        await log.wait_for(hikari.GuildUnavailableEvent)
        await sim.guild_recovered()
        await log.wait_for(hikari.GuildAvailableEvent, count=2)
        role = await sim.create_role("Level 5", permissions=0)
        created = (await log.wait_for(hikari.RoleCreateEvent))[0]
        assert created.role.id == role
        assert created.role.position == 1
        other = await sim.create_guild("Second")
        joined = (await log.wait_for(hikari.GuildJoinEvent))[0]
        assert joined.guild.id == other
        assert SANDBOX_BOT_ID in joined.members
        await sim.remove_guild(other)
        left = (await log.wait_for(hikari.GuildLeaveEvent))[0]
        assert left.guild_id == other


async def test_message_content_needs_the_intent(sim: DiscordSimulator) -> None:
    bot = make_bot(sim, intents=hikari.Intents.GUILDS | hikari.Intents.GUILD_MESSAGES)
    log = EventLog(bot, hikari.GuildMessageCreateEvent)
    async with running(bot, sim):
        await sim.message(ALICE, "general", "secret words")
        await sim.message(ALICE, "general", f"<@{SANDBOX_BOT_ID}> hi bot")
        plain, mention = await log.wait_for(hikari.GuildMessageCreateEvent, count=2)
        assert plain.content is None
        assert mention.content == f"<@{SANDBOX_BOT_ID}> hi bot"
        # No reaction intent: nothing is dispatched for reactions.
        assert await sim.react(BOB, plain.message_id, "👍") == ()


async def test_resume_replays_missed_events_once(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.GuildMessageCreateEvent, hikari.ShardResumedEvent, hikari.ShardReadyEvent)
    async with running(bot, sim):
        await sim.message(ALICE, "general", "before")
        await log.wait_for(hikari.GuildMessageCreateEvent)
        assert await sim.drop_connection() == 1
        missed = [await sim.message(ALICE, "general", f"missed {i}") for i in range(3)]
        await log.wait_for(hikari.ShardResumedEvent, timeout=10)
        after = await sim.message(ALICE, "general", "after")
        events = await log.wait_for(hikari.GuildMessageCreateEvent, count=5)
        assert [e.message_id for e in events][1:] == [*missed, after]
        assert len(log.of(hikari.ShardReadyEvent)) == 1  # resumed, not re-identified
        session = sim.gateway.live_sessions()[0]
        assert session.resumes == 1
        assert sim.gateway.connections[-1].path == "/gateway-resume"  # resume_gateway_url from READY was used


async def test_replay_last_delivers_duplicates(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.GuildMessageCreateEvent, hikari.GuildReactionAddEvent)
    async with running(bot, sim):
        message = await sim.message(ALICE, "general", "once")
        reaction_seqs = await sim.react(BOB, message, "🎉")
        replayed = await sim.replay_last(2)
        assert len(replayed) == 2
        assert min(replayed) > max(reaction_seqs)  # new sequence numbers
        messages = await log.wait_for(hikari.GuildMessageCreateEvent, count=2)
        reactions = await log.wait_for(hikari.GuildReactionAddEvent, count=2)
        assert {e.message_id for e in messages} == {message}
        assert {e.message_id for e in reactions} == {message}


async def test_invalid_session_makes_the_client_identify_again(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.ShardReadyEvent, hikari.GuildAvailableEvent)
    async with running(bot, sim):
        await sim.invalidate_sessions()
        await log.wait_for(hikari.ShardReadyEvent, count=2, timeout=15)
        await log.wait_for(hikari.GuildAvailableEvent, count=2)
        assert len(sim.gateway.identify_payloads) == 2


async def test_clean_shutdown_sends_normal_close_code(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    async with running(bot, sim):
        session_id = sim.gateway.live_sessions()[0].session_id
    assert [c.code for c in sim.close_codes] == [1001]
    assert sim.close_codes[0].session_id == session_id
    assert session_id not in sim.gateway.sessions  # a normal close ends the session, as on Discord
