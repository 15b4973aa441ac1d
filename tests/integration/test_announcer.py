"""Announcements (SPEC §14): the embed texts, and the announcer against a real hikari REST client and the simulator.

The REST side is hikari's own `RESTApp` client talking HTTP to `DiscordSimulator`; every assertion about what was
sent is made on the request bodies the simulator recorded (`sim.rest_calls`), not on a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import hikari
import pytest
from structlog.testing import capture_logs

from synapse_async.announce import (
    Announcement,
    AnnouncementKind,
    Announcer,
    achievement_embed,
    award_embed,
    level_up_embed,
)
from synapse_async.sandbox import SANDBOX_FIRST_MEMBER_ID, SANDBOX_GUILD_ID, DiscordSimulator
from synapse_async.sandbox.recording import RestCall
from synapse_async.sandbox.world import CHANNEL_GENERAL_ID, CHANNEL_HELP_ID, Overwrite, Permission
from tests.support import started_simulator

ALICE = SANDBOX_FIRST_MEMBER_ID
BOB = SANDBOX_FIRST_MEMBER_ID + 1
MESSAGES_ROUTE = "/channels/{channel_id}/messages"


# --- pure embed builders ----------------------------------------------------------------------------------


def test_level_up_embed_mentions_level_and_paid_gold() -> None:
    embed = level_up_embed(
        user_id=ALICE, level=7, gold=50, gold_name="Gold", avatar_url="https://cdn.example/avatar.png"
    )
    assert embed.title == "Level up!"
    assert embed.description == f"<@{ALICE}> reached **Level 7**\n+50 Gold"
    assert embed.thumbnail is not None
    assert str(embed.thumbnail.url) == "https://cdn.example/avatar.png"


def test_level_up_embed_without_gold_or_avatar() -> None:
    embed = level_up_embed(user_id=ALICE, level=2, gold=0, gold_name="Gold", avatar_url=None)
    assert embed.description == f"<@{ALICE}> reached **Level 2**"
    assert embed.thumbnail is None


def test_achievement_embed_full() -> None:
    embed = achievement_embed(
        user_id=ALICE,
        name="Chatterbox",
        rarity_name="Rare",
        rarity_emoji="🔵",
        rarity_color="#2196F3",
        description="Send 1,000 messages",
        hidden=False,
        xp=100,
        gold=25,
        xp_name="XP",
        gold_name="Gold",
        image_url="https://cdn.example/badge.png",
        granted_by="Sandbox Admin",
    )
    assert embed.title == "Achievement unlocked!"
    assert embed.description == (
        f"<@{ALICE}> earned 🔵 **Chatterbox** (Rare)\nSend 1,000 messages\nRewards: +100 XP · +25 Gold"
    )
    assert embed.color == hikari.Color(0x2196F3)
    assert embed.thumbnail is not None
    assert str(embed.thumbnail.url) == "https://cdn.example/badge.png"
    assert embed.footer is not None
    assert embed.footer.text == "Granted by Sandbox Admin"


def test_achievement_embed_hidden_without_rarity_rewards_or_grant() -> None:
    embed = achievement_embed(
        user_id=ALICE,
        name="Night Owl",
        rarity_name=None,
        rarity_emoji=None,
        rarity_color="not-a-colour",
        description="Post between 3 and 4 am",
        hidden=True,
        xp=0,
        gold=0,
        xp_name="XP",
        gold_name="Gold",
        image_url=None,
        granted_by=None,
    )
    assert embed.description == f"<@{ALICE}> earned **Night Owl**"
    assert embed.color is None
    assert embed.footer is None
    assert embed.thumbnail is None


def test_achievement_rewards_show_positive_parts_only() -> None:
    embed = achievement_embed(
        user_id=ALICE,
        name="Helper",
        rarity_name="Common",
        rarity_emoji="⚪",
        rarity_color="#9E9E9E",
        description=None,
        hidden=False,
        xp=0,
        gold=10,
        xp_name="XP",
        gold_name="Coins",
        image_url=None,
        granted_by=None,
    )
    assert embed.description == f"<@{ALICE}> earned ⚪ **Helper** (Common)\nRewards: +10 Coins"


def test_award_embed_positive_parts_reason_and_footer() -> None:
    both = award_embed(
        user_id=ALICE, xp=200, gold=30, xp_name="XP", gold_name="Gold", reason="Won the quiz", awarded_by="Mod"
    )
    assert both.title == "Award"
    assert both.description == f"<@{ALICE}> received +200 XP / +30 Gold\nReason: Won the quiz"
    assert both.footer is not None
    assert both.footer.text == "Awarded by Mod"

    gold_only = award_embed(
        user_id=ALICE, xp=-50, gold=30, xp_name="XP", gold_name="Gold", reason="Swap", awarded_by="Mod"
    )
    assert gold_only.description == f"<@{ALICE}> received +30 Gold\nReason: Swap"

    with pytest.raises(ValueError, match="positive"):
        award_embed(user_id=ALICE, xp=0, gold=-5, xp_name="XP", gold_name="Gold", reason="x", awarded_by="Mod")


def test_embed_text_is_capped_at_discord_limits() -> None:
    embed = award_embed(
        user_id=ALICE, xp=1, gold=0, xp_name="XP", gold_name="Gold", reason="r" * 5000, awarded_by="M" * 3000
    )
    assert embed.description is not None
    assert len(embed.description) == 4096
    assert embed.description.endswith("…")
    assert embed.footer is not None
    assert embed.footer.text is not None
    assert len(embed.footer.text) == 2048


# --- fixtures and helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def sim() -> AsyncIterator[DiscordSimulator]:
    async with started_simulator(members=5, seed=7) as simulator:
        yield simulator


@pytest.fixture
async def rest(sim: DiscordSimulator) -> AsyncIterator[hikari.api.RESTClient]:
    app = hikari.RESTApp(url=sim.api_url)
    await app.start()
    try:
        async with app.acquire(sim.token, hikari.TokenType.BOT) as client:
            yield client
    finally:
        await app.close()


@contextlib.asynccontextmanager
async def running(announcer: Announcer) -> AsyncIterator[asyncio.Task[None]]:
    """`announcer.run()` as a background task for the block, cancelled (and awaited) afterwards."""
    task = asyncio.create_task(announcer.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def announcement(
    *channels: int, user_id: int = ALICE, kind: AnnouncementKind = "level_up", level: int = 5
) -> Announcement:
    embed = level_up_embed(user_id=user_id, level=level, gold=0, gold_name="Gold", avatar_url=None)
    return Announcement(guild_id=SANDBOX_GUILD_ID, kind=kind, user_id=user_id, channel_candidates=channels, embed=embed)


def posts(sim: DiscordSimulator, channel: int | None = None) -> list[RestCall]:
    return [
        c
        for c in sim.rest_calls
        if c.method == "POST"
        and c.route == MESSAGES_ROUTE
        and (channel is None or c.path == f"/channels/{channel}/messages")
    ]


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `check()` holds (the announcer's counters move after hikari has parsed the response).

    Polling on purpose: the announcer's only observable is its public `snapshot()`, which has no change event.
    """
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def levels(calls: list[RestCall]) -> list[str]:
    return [c.json["embeds"][0]["description"] for c in calls]


async def test_announcer_rejects_unbounded_settings(rest: hikari.api.RESTClient) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Announcer(rest, channel_queue=0)
    with pytest.raises(ValueError, match="at least 1"):
        Announcer(rest, total_queue=0)
    with pytest.raises(ValueError, match="positive"):
        Announcer(rest, window_seconds=0)


# --- sending ----------------------------------------------------------------------------------------------


async def test_level_up_is_posted_with_no_allowed_mentions(sim: DiscordSimulator, rest: hikari.api.RESTClient) -> None:
    announcer = Announcer(rest)
    async with running(announcer):
        embed = level_up_embed(user_id=ALICE, level=3, gold=20, gold_name="Gold", avatar_url=None)
        announcer.enqueue(
            Announcement(
                guild_id=SANDBOX_GUILD_ID,
                kind="level_up",
                user_id=ALICE,
                channel_candidates=(CHANNEL_GENERAL_ID,),
                embed=embed,
            )
        )
        call = await sim.wait_for_rest(lambda c: c.route == MESSAGES_ROUTE)
        await eventually(lambda: announcer.snapshot()["sent"] == 1)
    assert call.method == "POST"
    assert call.status == 200
    assert call.path == f"/channels/{CHANNEL_GENERAL_ID}/messages"
    assert call.json["allowed_mentions"] == {"parse": []}
    assert call.json["embeds"][0]["title"] == "Level up!"
    assert call.json["embeds"][0]["description"] == f"<@{ALICE}> reached **Level 3**\n+20 Gold"
    assert "content" not in call.json or not call.json["content"]
    stored = sim.world.message(int(call.response["id"]))
    assert stored.allowed_mentions == {"parse": []}
    assert announcer.snapshot() == {"queued": 0, "dropped": 0, "sent": 1, "failed": 0, "skipped": 0}


async def test_unusable_candidates_are_passed_over(sim: DiscordSimulator, rest: hikari.api.RESTClient) -> None:
    checked: list[int] = []

    def is_usable(guild_id: int, channel_id: int) -> bool:
        assert guild_id == SANDBOX_GUILD_ID
        checked.append(channel_id)
        return channel_id != CHANNEL_HELP_ID

    announcer = Announcer(rest, is_usable=is_usable)
    async with running(announcer):
        announcer.enqueue(announcement(CHANNEL_HELP_ID, CHANNEL_HELP_ID, CHANNEL_GENERAL_ID))
        await eventually(lambda: announcer.snapshot()["sent"] == 1)
    assert [c.path for c in posts(sim)] == [f"/channels/{CHANNEL_GENERAL_ID}/messages"]
    assert checked.count(CHANNEL_HELP_ID) == 1  # the duplicate is not asked about twice

    with capture_logs() as logs:
        announcer.enqueue(announcement(CHANNEL_HELP_ID))
    assert announcer.snapshot()["skipped"] == 1
    assert announcer.snapshot()["queued"] == 0
    assert [e["reason"] for e in logs if e["event"] == "announcement_skipped"] == ["no_usable_channel"]


async def test_deleted_and_forbidden_channels_fall_through(sim: DiscordSimulator, rest: hikari.api.RESTClient) -> None:
    doomed = await sim.create_channel("doomed")
    await sim.delete_channel(doomed)  # the bot's config cache has not heard of it: is_usable says yes
    hidden = await sim.create_channel(
        "staff", overwrites=[Overwrite(id=SANDBOX_GUILD_ID, type=0, deny=int(Permission.VIEW_CHANNEL))]
    )
    announcer = Announcer(rest)
    async with running(announcer):
        announcer.enqueue(announcement(doomed, hidden, CHANNEL_GENERAL_ID))
        await eventually(lambda: announcer.snapshot()["sent"] == 1)
        assert [(c.path, c.status) for c in posts(sim)] == [
            (f"/channels/{doomed}/messages", 404),
            (f"/channels/{hidden}/messages", 403),
            (f"/channels/{CHANNEL_GENERAL_ID}/messages", 200),
        ]
        # Refused channels are remembered for a window: the next announcement does not repeat the failing calls.
        announcer.enqueue(announcement(doomed, hidden, CHANNEL_GENERAL_ID, user_id=BOB))
        await eventually(lambda: announcer.snapshot()["sent"] == 2)
        assert len(posts(sim)) == 4
        assert posts(sim)[-1].path == f"/channels/{CHANNEL_GENERAL_ID}/messages"

        with capture_logs() as logs:
            announcer.enqueue(announcement(doomed, hidden))
    assert announcer.snapshot() == {"queued": 0, "dropped": 0, "sent": 2, "failed": 0, "skipped": 1}
    assert len(posts(sim)) == 4
    assert any(e["event"] == "announcement_skipped" for e in logs)


async def test_a_channel_deleted_while_entries_wait_reroutes_them(
    sim: DiscordSimulator, rest: hikari.api.RESTClient
) -> None:
    target = await sim.create_channel("level-ups")
    announcer = Announcer(rest, per_channel=1, window_seconds=0.3)
    async with running(announcer):
        for level in (1, 2, 3):
            announcer.enqueue(announcement(target, CHANNEL_GENERAL_ID, level=level))
        await eventually(lambda: announcer.snapshot()["sent"] == 1)
        assert announcer.snapshot()["queued"] == 2  # throttled in target's queue
        await sim.delete_channel(target)
        await eventually(lambda: announcer.snapshot()["sent"] == 3)
    assert [(c.path, c.status) for c in posts(sim)] == [
        (f"/channels/{target}/messages", 200),
        (f"/channels/{target}/messages", 404),  # tried once; the refusal is remembered for the window
        (f"/channels/{CHANNEL_GENERAL_ID}/messages", 200),
        (f"/channels/{CHANNEL_GENERAL_ID}/messages", 200),
    ]
    assert levels(posts(sim, CHANNEL_GENERAL_ID)) == [f"<@{ALICE}> reached **Level {n}**" for n in (2, 3)]
    assert announcer.snapshot()["queued"] == 0


async def test_other_errors_count_as_failed_without_retry_or_fall_through(
    sim: DiscordSimulator, rest: hikari.api.RESTClient
) -> None:
    category = sim.channel_id("Community")  # Discord answers 400 for a message to a category
    announcer = Announcer(rest)
    with capture_logs() as logs:
        async with running(announcer):
            announcer.enqueue(announcement(category, CHANNEL_GENERAL_ID))
            await eventually(lambda: announcer.snapshot()["failed"] == 1)
            await asyncio.sleep(0.1)
    assert [(c.path, c.status) for c in posts(sim)] == [(f"/channels/{category}/messages", 400)]
    assert announcer.snapshot()["sent"] == 0
    failed = [e for e in logs if e["event"] == "announcement_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["channel_id"] == category
    assert "BadRequestError" in failed[0]["error"]


# --- throttle and queues ----------------------------------------------------------------------------------


async def test_throttle_holds_the_fourth_send_until_the_window_passes(
    sim: DiscordSimulator, rest: hikari.api.RESTClient
) -> None:
    window = 0.5
    announcer = Announcer(rest, per_channel=3, window_seconds=window)
    async with running(announcer):
        started = time.monotonic()
        for level in range(1, 5):
            announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=level))
        await eventually(lambda: announcer.snapshot()["sent"] == 3)
        await asyncio.sleep(0.1)
        assert len(posts(sim)) == 3
        assert announcer.snapshot()["queued"] == 1
        # Another channel has its own window.
        announcer.enqueue(announcement(CHANNEL_HELP_ID, level=9))
        await eventually(lambda: len(posts(sim, CHANNEL_HELP_ID)) == 1)
        assert len(posts(sim, CHANNEL_GENERAL_ID)) == 3

        await eventually(lambda: announcer.snapshot()["sent"] == 5, timeout=3)
        elapsed = time.monotonic() - started
    general = posts(sim, CHANNEL_GENERAL_ID)
    assert levels(general) == [f"<@{ALICE}> reached **Level {n}**" for n in (1, 2, 3, 4)]
    assert elapsed >= window  # the 4th send started a full window after the 1st, which started after `started`
    assert elapsed < window + 2.0  # …and was not left waiting much longer
    assert announcer.snapshot()["queued"] == 0


async def test_throttle_follows_the_injected_clock(sim: DiscordSimulator, rest: hikari.api.RESTClient) -> None:
    now = [1000.0]
    announcer = Announcer(rest, per_channel=1, window_seconds=60, clock=lambda: now[0])
    async with running(announcer):
        announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=1))
        announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=2))
        await eventually(lambda: announcer.snapshot()["sent"] == 1)
        await asyncio.sleep(0.1)
        assert announcer.snapshot()["queued"] == 1
        now[0] += 61  # a full window on the injected clock, no real waiting
        announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=3))  # wakes the dispatcher
        await eventually(lambda: announcer.snapshot()["sent"] == 2)
        await asyncio.sleep(0.1)
    assert levels(posts(sim)) == [f"<@{ALICE}> reached **Level {n}**" for n in (1, 2)]
    assert announcer.snapshot()["queued"] == 1


async def test_overflow_drops_the_oldest_with_a_warning(sim: DiscordSimulator, rest: hikari.api.RESTClient) -> None:
    announcer = Announcer(rest, channel_queue=3, total_queue=5)
    with capture_logs() as logs:
        for level in range(1, 5):  # nothing runs yet: all four wait in #general's queue of 3
            announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=level))
        assert announcer.snapshot()["queued"] == 3
        assert announcer.snapshot()["dropped"] == 1
        for level in range(11, 14):  # 3 + 3 > 5: the globally oldest (level 2, in #general) goes
            announcer.enqueue(announcement(CHANNEL_HELP_ID, level=level, kind="achievement"))
    # One WARNING per channel per interval: the first drop at once, the second counted for the window's summary.
    dropped = [e for e in logs if e["event"] == "announcements_dropped"]
    assert [(e["channel_id"], e["count"], e["reasons"], e["kinds"], e["log_level"]) for e in dropped] == [
        (CHANNEL_GENERAL_ID, 1, {"channel_queue_full": 1}, {"level_up": 1}, "warning"),
    ]
    assert announcer.snapshot()["queued"] == 5
    assert announcer.snapshot()["dropped"] == 2

    assert await announcer.flush(asyncio.get_running_loop().time() + 5) == 0
    assert levels(posts(sim, CHANNEL_GENERAL_ID)) == [f"<@{ALICE}> reached **Level {n}**" for n in (3, 4)]
    assert levels(posts(sim, CHANNEL_HELP_ID)) == [f"<@{ALICE}> reached **Level {n}**" for n in (11, 12, 13)]


async def test_flush_sends_what_the_throttle_allows_then_drops_the_rest(
    sim: DiscordSimulator, rest: hikari.api.RESTClient
) -> None:
    announcer = Announcer(rest, per_channel=1, window_seconds=60)
    loop = asyncio.get_running_loop()
    for level in (1, 2, 3):
        announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=level))
    announcer.enqueue(announcement(CHANNEL_HELP_ID, level=7, kind="achievement"))
    with capture_logs() as logs:
        started = loop.time()
        dropped = await announcer.flush(started + 0.5)
        finished = loop.time()
        announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=4))  # after the flush: dropped at once
    assert dropped == 2
    assert 0.45 <= finished - started < 2.0
    assert levels(posts(sim, CHANNEL_GENERAL_ID)) == [f"<@{ALICE}> reached **Level 1**"]
    assert levels(posts(sim, CHANNEL_HELP_ID)) == [f"<@{ALICE}> reached **Level 7**"]
    summary = [e for e in logs if e["event"] == "announcements_dropped_at_shutdown"]
    assert len(summary) == 1
    assert summary[0]["dropped"] == 2
    assert summary[0]["sent"] == 2
    assert summary[0]["dropped_by_kind"] == {"level_up": 2}
    assert any(e["event"] == "announcements_dropped" and e["reasons"] == {"shut_down": 1} for e in logs)
    assert announcer.snapshot() == {"queued": 0, "dropped": 3, "sent": 2, "failed": 0, "skipped": 0}


async def test_flush_returns_as_soon_as_everything_is_sent(sim: DiscordSimulator, rest: hikari.api.RESTClient) -> None:
    announcer = Announcer(rest)
    loop = asyncio.get_running_loop()
    async with running(announcer):  # flush cooperates with a live run loop
        for level in (1, 2):
            announcer.enqueue(announcement(CHANNEL_GENERAL_ID, level=level))
        announcer.enqueue(announcement(CHANNEL_HELP_ID, level=3))
        started = loop.time()
        with capture_logs() as logs:
            assert await announcer.flush(started + 10) == 0
        assert loop.time() - started < 3
    assert len(posts(sim)) == 3
    assert [e["event"] for e in logs if e["event"].startswith("announcements_")] == ["announcements_flushed"]
    assert announcer.snapshot() == {"queued": 0, "dropped": 0, "sent": 3, "failed": 0, "skipped": 0}


async def test_flush_cancels_a_send_still_in_flight_at_the_deadline() -> None:
    """A Discord that accepts the request and never answers: the send is cancelled at the deadline and counted."""
    received = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def black_hole(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        received.set()

    server = await asyncio.start_server(black_hole, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    app = hikari.RESTApp(url=f"http://127.0.0.1:{port}/api/v10")
    await app.start()
    try:
        async with app.acquire("x.y.z", hikari.TokenType.BOT) as client:
            announcer = Announcer(client)
            announcer.enqueue(announcement(CHANNEL_GENERAL_ID, kind="manual_award"))
            loop = asyncio.get_running_loop()
            with capture_logs() as logs:
                flushing = asyncio.create_task(announcer.flush(loop.time() + 0.5))
                await asyncio.wait_for(received.wait(), 5)
                assert announcer.snapshot()["queued"] == 0  # taken off the queue: it is in flight
                dropped = await flushing
    finally:
        await app.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
    assert dropped == 1
    assert announcer.snapshot() == {"queued": 0, "dropped": 1, "sent": 0, "failed": 0, "skipped": 0}
    cancelled = [e for e in logs if e["event"] == "announcement_send_cancelled"]
    assert [(e["channel_id"], e["kind"]) for e in cancelled] == [(CHANNEL_GENERAL_ID, "manual_award")]
    summary = next(e for e in logs if e["event"] == "announcements_dropped_at_shutdown")
    assert summary["dropped_by_kind"] == {"manual_award": 1}
