"""Event-lake capture through the whole stack (simulator → real hikari → pipeline → PostgreSQL), SPEC §15.1–§15.2.

Every gateway event type must produce exactly its specified lake row — the payload fields of §15.1 and nothing
else, snowflakes as strings — and counters for `lifetime`, the active `season:` and the UTC `day:` that match the
rows. No payload may contain message text, a thread title or a nickname (§27 item 9). A source switched off
writes neither rows nor counters, while the rewards of the same events are still paid exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from synapse_async.lake.jobs import request_lake_job
from synapse_async.runtime import Runtime
from synapse_async.sandbox import DiscordSimulator
from tests.pipeline_support import (
    ACTOR,
    ALICE,
    BOB,
    CAROL,
    GUILD,
    PLAIN,
    query,
    set_settings,
    settle,
    wait_key,
    write_config,
)
from tests.support import wait_for

MARK = "zebrafish"  # in every text the bot sees below: message content, thread title, nickname
SECRET_TEXT = f"{MARK} says hello to everyone here https://example.com and more"

FIELDS = {
    "message_create": {
        "message_id", "length", "word_count", "has_code_block", "has_link", "link_count", "attachment_count",
        "emoji_count", "mention_count", "is_reply", "in_thread", "parent_channel_id",
    },
    "message_delete": {"message_id", "age_seconds", "bulk"},
    "reaction_add": {"message_id", "emoji", "emoji_custom", "message_age_seconds"},
    "reaction_remove": {"message_id", "emoji", "emoji_custom"},
    "thread_create": {"thread_id", "parent_channel_id", "parent_type", "is_private", "title_length"},
    "voice_join": {"self_mute", "self_deaf", "server_mute", "server_deaf", "is_afk_channel", "members_in_channel"},
    "voice_leave": {"duration_seconds", "self_mute", "self_deaf", "is_afk_channel"},
    "voice_move": {"from_channel_id", "to_channel_id", "seconds_in_previous", "to_is_afk_channel"},
    "member_join": {"joined_at", "account_created_at", "is_rejoin"},
    "member_leave": {"joined_at", "membership_seconds"},
}  # fmt: skip


async def _rows(rt: Runtime, event_type: str, user: int | None = None) -> list[dict[str, Any]]:
    sql = "SELECT * FROM event_lake WHERE guild_id = :g AND event_type = :t"
    if user is not None:
        sql += " AND user_id = :u"
    return await query(rt, sql + " ORDER BY id", t=event_type, u=user)


async def _one(rt: Runtime, event_type: str, user: int | None = None, n: int = 1) -> dict[str, Any]:
    """Wait for the `n`-th lake row of that type (and user) and return it."""
    found: list[dict[str, Any]] = []

    async def present() -> bool:
        found[:] = await _rows(rt, event_type, user)
        return len(found) >= n

    await wait_for(present)
    return found[n - 1]


async def test_every_gateway_event_type_gives_its_lake_row_and_counters(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, _plain = plain_sandbox
    await write_config(
        rt,
        "INSERT INTO seasons (guild_id, name, starts_at, ends_at, status, created_by)"
        " VALUES (:g, 'Lake season', now() - interval '1 day', now() + interval '10 days', 'active', 'x')",
        "seasons",
    )
    season_id = (await query(rt, "SELECT season_id FROM seasons WHERE guild_id = :g AND status = 'active'"))[0][
        "season_id"
    ]
    general, lounge, afk = (sim.channel_id(c) for c in ("general", "Lounge", "AFK"))
    await sim.update_member(CAROL, nick=f"{MARK} nick")

    first = int(await sim.message(ALICE, "general", SECRET_TEXT))
    reply = int(await sim.message(BOB, "general", f"{MARK} replying, agreed on all counts", reply_to=first))
    await sim.react(BOB, first, "👍")
    await sim.react(BOB, first, "👍", remove=True)
    thread = int(await sim.create_thread("general", CAROL, f"{MARK} thread title"))
    await sim.voice(CAROL, "Lounge", self_mute=True)
    await sim.voice(CAROL, "AFK")
    await sim.voice(CAROL, None)
    await sim.delete_message(first)
    joiner = int(await sim.join(username=f"{MARK}_joiner", global_name=f"{MARK} Joiner"))
    await sim.leave(joiner)

    created = await _one(rt, "message_create", ALICE)
    assert (created["channel_id"], created["target_id"], created["source_key"]) == (general, None, f"msg:{first}")
    assert created["payload"]["message_id"] == str(first) and created["payload"]["length"] == len(SECRET_TEXT)
    assert created["payload"]["has_link"] is True and created["payload"]["in_thread"] is False
    replied = await _one(rt, "message_create", BOB)
    assert replied["target_id"] == ALICE and replied["payload"]["is_reply"] is True
    assert replied["payload"]["message_id"] == str(reply)

    added = await _one(rt, "reaction_add", BOB)
    assert (added["channel_id"], added["target_id"]) == (general, ALICE)
    assert added["payload"]["message_id"] == str(first) and added["payload"]["emoji"] == "u1f44d"
    assert added["payload"]["emoji_custom"] is False
    removed = await _one(rt, "reaction_remove", BOB)
    assert (removed["channel_id"], removed["target_id"]) == (general, ALICE)

    threaded = await _one(rt, "thread_create", CAROL)
    assert (threaded["channel_id"], threaded["target_id"]) == (thread, general)
    assert threaded["payload"]["thread_id"] == str(thread) and threaded["payload"]["parent_channel_id"] == str(general)
    assert threaded["payload"]["title_length"] == len(f"{MARK} thread title")
    assert threaded["payload"]["is_private"] is False

    joined = await _one(rt, "voice_join", CAROL)
    assert (joined["channel_id"], joined["target_id"]) == (lounge, None)
    assert joined["payload"]["self_mute"] is True and joined["payload"]["is_afk_channel"] is False
    moved = await _one(rt, "voice_move", CAROL)
    assert (moved["channel_id"], moved["target_id"]) == (afk, lounge)
    assert (moved["payload"]["from_channel_id"], moved["payload"]["to_channel_id"]) == (str(lounge), str(afk))
    assert moved["payload"]["to_is_afk_channel"] is True
    left = await _one(rt, "voice_leave", CAROL)
    assert left["channel_id"] == afk and left["payload"]["is_afk_channel"] is True

    deleted = await _one(rt, "message_delete")
    assert (deleted["user_id"], deleted["channel_id"], deleted["source_key"]) == (ALICE, general, f"mdel:{first}")
    assert deleted["payload"]["bulk"] is False and deleted["payload"]["message_id"] == str(first)

    member_joined = await _one(rt, "member_join", joiner)
    assert member_joined["channel_id"] is None and member_joined["payload"]["is_rejoin"] is False
    member_left = await _one(rt, "member_leave", joiner)
    assert member_left["payload"]["joined_at"] == member_joined["payload"]["joined_at"]
    assert isinstance(member_left["payload"]["membership_seconds"], int)

    await settle(rt)
    rows = await query(rt, "SELECT event_type, user_id, payload, row_to_json(l)::text AS whole FROM event_lake l"
                       " WHERE guild_id = :g")  # fmt: skip
    assert {r["event_type"] for r in rows} == set(FIELDS)
    for r in rows:
        assert set(r["payload"]) == FIELDS[r["event_type"]], r["event_type"]
        assert MARK not in r["whole"].lower(), r["event_type"]  # no text, title or nickname anywhere in the row

    # Counters match the rows exactly, for all three periods (the season active at the events' time).
    today = f"day:{datetime.now(UTC).date().isoformat()}"
    counts: dict[tuple[int, str], int] = {}
    for r in rows:
        if r["user_id"] is not None:
            counts[(r["user_id"], r["event_type"])] = counts.get((r["user_id"], r["event_type"]), 0) + 1
    stored = await query(rt, "SELECT user_id, event_type, period, count FROM event_counters WHERE guild_id = :g")
    by_key = {(c["user_id"], c["event_type"], c["period"]): c["count"] for c in stored}
    for (user, event_type), n in counts.items():
        for period in ("lifetime", today, f"season:{season_id}"):
            assert by_key.get((user, event_type, period)) == n, (user, event_type, period)
    assert len(by_key) == 3 * len(counts)


async def test_a_disabled_source_writes_no_rows_or_counters_and_rewards_stay_exactly_once(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, sim, plain = plain_sandbox
    user, reactor = 100000000000001010, 100000000000001011
    await set_settings(rt, {"lake.source.message_create": False, "lake.source.reaction_add": False})
    try:
        message = int(await sim.message(user, plain, PLAIN))
        await sim.react(reactor, message, "🎉")
        await wait_key(rt, f"rr:{message}:{reactor}")
        await sim.replay_last(2)  # the same message and reaction delivered again
        marker = int(await sim.message(reactor, plain, PLAIN))  # lanes keep order: after it, the replays are done
        await wait_key(rt, f"msg:{marker}")
        await settle(rt)

        lake = await query(
            rt, "SELECT event_type FROM event_lake WHERE guild_id = :g AND user_id IN (:a, :b)", a=user, b=reactor
        )
        assert lake == []
        counters = await query(
            rt, "SELECT * FROM event_counters WHERE guild_id = :g AND user_id IN (:a, :b)", a=user, b=reactor
        )
        assert counters == []
        journal = await query(
            rt,
            "SELECT user_id, idempotency_key, xp_delta FROM reward_journal WHERE guild_id = :g AND user_id IN (:a, :b)"
            " ORDER BY id",
            a=user,
            b=reactor,
        )
        keys = sorted(j["idempotency_key"] for j in journal)  # each exactly once despite the redelivery
        assert keys == sorted([f"msg:{message}", f"rg:{message}:{reactor}", f"rr:{message}:{reactor}", f"msg:{marker}"])
        for who in (user, reactor):
            xp = (await query(rt, "SELECT xp FROM members WHERE guild_id = :g AND user_id = :u", u=who))[0]["xp"]
            assert xp == sum(j["xp_delta"] for j in journal if j["user_id"] == who) > 0

        # The switch takes effect at once both ways: on again, the next event is recorded with its counters.
        await set_settings(rt, {"lake.source.message_create": True})
        again = int(await sim.message(user, plain, PLAIN))
        await wait_key(rt, f"msg:{again}")
        await settle(rt)
        assert [r["source_key"] for r in await _rows(rt, "message_create", user)] == [f"msg:{again}"]
    finally:
        await set_settings(rt, {"lake.source.message_create": True, "lake.source.reaction_add": True})


async def test_messages_with_the_lake_off_still_go_out_pipelined(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    """With `lake.source.message_create` off, runs of messages used to be rolled back and replayed one event per
    transaction (5× slower in bench/pipeline.py); now they take the pipelined path with the journal as the gate."""
    rt, sim, plain = plain_sandbox
    assert rt.pipeline is not None
    user = 100000000000001012
    await set_settings(rt, {"lake.source.message_create": False})
    try:
        before = rt.pipeline.processor.pipelined_events
        sent = [int(await sim.message(user, plain, PLAIN)) for _ in range(3)]
        for message in sent:
            await wait_key(rt, f"msg:{message}")
        await settle(rt)
        assert rt.pipeline.processor.pipelined_events - before == 3
        assert await _rows(rt, "message_create", user) == []
        member = await query(rt, "SELECT xp, messages_sent FROM members WHERE guild_id = :g AND user_id = :u", u=user)
        assert member[0]["messages_sent"] == 3 and member[0]["xp"] > 0
    finally:
        await set_settings(rt, {"lake.source.message_create": True})


async def test_the_runtime_runs_lake_jobs_and_supervises_the_scheduler(
    plain_sandbox: tuple[Runtime, DiscordSimulator, int],
) -> None:
    rt, _sim, _plain = plain_sandbox
    assert rt.components.db is not None
    assert "lake_scheduler" in {t.name for t in rt.supervisor.statuses()}
    jobs = [
        await request_lake_job(rt.components.db.sessions, GUILD, kind, body, ACTOR)
        for kind, body in (("retention", {}), ("reconciliation", {}), ("backfill", {"dry_run": True}))
    ]

    async def finished() -> bool:
        rows = await query(rt, "SELECT status FROM jobs WHERE job_id = ANY(:ids)", ids=[j.job_id for j in jobs])
        return len(rows) == 3 and all(r["status"] == "succeeded" for r in rows)

    await wait_for(finished)
    backfill = await query(rt, "SELECT result FROM jobs WHERE job_id = :i", i=jobs[2].job_id)
    assert backfill[0]["result"]["dry_run"] is True and backfill[0]["result"]["groups_read"] > 0
