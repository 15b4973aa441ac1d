"""Slash commands end to end: a lightbulb 3 client registers and answers, `sim.invoke` returns what it answered;
raw hikari interactions check the simulator enforces Discord's acknowledgement rules."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import hikari
import lightbulb
import pytest

from synapse_async.sandbox import SANDBOX_FIRST_MEMBER_ID, DiscordSimulator

from .conftest import EventLog, make_bot, running

ALICE = SANDBOX_FIRST_MEMBER_ID
BOB = SANDBOX_FIRST_MEMBER_ID + 1


def _lightbulb_client(bot: hikari.GatewayBot) -> lightbulb.GatewayEnabledClient:
    client = lightbulb.client_from_app(bot)

    @client.register()
    class Profile(lightbulb.SlashCommand, name="profile", description="Show a profile"):
        member = lightbulb.user("member", "Whose profile", default=None)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            target = self.member or ctx.user
            await ctx.respond(f"profile of {target.username}")

    @client.register()
    class Stats(lightbulb.SlashCommand, name="stats", description="Slow, private stats"):
        days = lightbulb.integer("days", "Window", default=7)

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.defer(ephemeral=True)
            await asyncio.sleep(0.05)
            await ctx.respond(f"{self.days} days", embed=hikari.Embed(title="Stats"))

    admin = lightbulb.Group("admin", "Admin commands", default_member_permissions=hikari.Permissions.MANAGE_GUILD)
    xp = admin.subgroup("xp", "XP tools")

    @admin.register()
    class Award(lightbulb.SlashCommand, name="award", description="Award gold"):
        member = lightbulb.user("member", "Who")
        amount = lightbulb.integer("amount", "How much")

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(f"awarded {self.amount} to {self.member.id}", ephemeral=True)

    @xp.register()
    class Reset(lightbulb.SlashCommand, name="reset", description="Reset XP"):
        confirm = lightbulb.boolean("confirm", "Really")

        @lightbulb.invoke
        async def invoke(self, ctx: lightbulb.Context) -> None:
            await ctx.respond(f"reset confirmed={self.confirm}")

    client.register(admin)
    bot.subscribe(hikari.StartedEvent, client.start)
    return client


async def test_lightbulb_command_roundtrip(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    _lightbulb_client(bot)
    async with running(bot, sim):
        answer = await sim.invoke("profile", user=ALICE)
        assert answer.content == f"profile of {sim.world.user(ALICE).username}"
        assert answer.callback_type == 4
        assert not answer.ephemeral
        assert answer.ack_seconds is not None
        assert answer.ack_seconds < 3

        other = await sim.invoke("profile", user=ALICE, options={"member": BOB})
        assert other.content == f"profile of {sim.world.user(BOB).username}"
        data = other.payload["data"]
        assert data["options"] == [{"name": "member", "type": 6, "value": str(BOB)}]
        assert str(BOB) in data["resolved"]["members"]

        stats = await sim.invoke("stats", user=BOB, options={"days": 30})
        assert stats.deferred
        assert stats.ephemeral
        assert stats.content == "30 days"
        assert stats.embeds[0]["title"] == "Stats"
        assert stats.log == ["callback:5", "followup:original"]

        award = await sim.invoke("admin award", user=100000000000000010, options={"member": ALICE, "amount": 50})
        assert award.content == f"awarded 50 to {ALICE}"
        assert award.ephemeral
        assert award.payload["data"]["options"] == [
            {
                "name": "award",
                "type": 1,
                "options": [
                    {"name": "member", "type": 6, "value": str(ALICE)},
                    {"name": "amount", "type": 4, "value": 50},
                ],
            }
        ]
        reset = await sim.invoke("admin xp reset", user=100000000000000010, options={"confirm": True})
        assert reset.content == "reset confirmed=True"
        assert reset.payload["data"]["options"][0]["type"] == 2  # subcommand group

        registered = await sim.wait_for_rest(
            lambda c: c.method == "PUT" and c.route == "/applications/{application_id}/commands"
        )
        assert {c["name"] for c in registered.json} == {"profile", "stats", "admin"}
        sent = next(c for c in registered.json if c["name"] == "admin")
        stored = next(c for c in registered.response if c["name"] == "admin")
        assert sent["default_member_permissions"] == int(hikari.Permissions.MANAGE_GUILD)
        assert stored["default_member_permissions"] == str(int(hikari.Permissions.MANAGE_GUILD))  # Discord: string
        callbacks = [c for c in sim.rest_calls if c.route == "/interactions/{interaction_id}/{token}/callback"]
        assert all(c.query.get("with_response") == "true" and c.status == 200 for c in callbacks)
        assert "Authorization" not in callbacks[0].headers  # hikari sends interaction callbacks without the token


@pytest.fixture
async def strict_sim() -> AsyncIterator[DiscordSimulator]:
    simulator = DiscordSimulator(members=5, seed=1, heartbeat_interval_ms=1000, ack_timeout_s=1.0)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.stop()


async def test_acknowledgement_rules(strict_sim: DiscordSimulator) -> None:
    sim = strict_sim
    bot = make_bot(sim)
    outcome: dict[str, object] = {}

    async def on_command(event: hikari.CommandInteractionCreateEvent) -> None:
        interaction = event.interaction
        name = interaction.command_name
        if name == "twice":
            await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "one")
            try:
                await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "two")
            except hikari.BadRequestError as exc:
                outcome["twice"] = exc.code
        elif name == "late":
            await asyncio.sleep(1.3)
            try:
                await interaction.create_initial_response(hikari.ResponseType.MESSAGE_CREATE, "too late")
            except hikari.NotFoundError as exc:
                outcome["late"] = exc.code
        elif name == "fails":
            # §17.1: an error after a public defer deletes the deferred reply and follows up ephemerally.
            await interaction.create_initial_response(hikari.ResponseType.DEFERRED_MESSAGE_CREATE)
            await interaction.delete_initial_response()
            await interaction.execute("The bot is busy right now", flags=hikari.MessageFlag.EPHEMERAL)

    bot.subscribe(hikari.CommandInteractionCreateEvent, on_command)
    log = EventLog(bot, hikari.GuildMessageCreateEvent, hikari.GuildMessageDeleteEvent)
    async with running(bot, sim):
        application = await bot.rest.fetch_application()
        await bot.rest.set_application_commands(
            application, [bot.rest.slash_command_builder(n, n) for n in ("twice", "late", "fails")]
        )
        twice = await sim.invoke("twice", user=ALICE, until=lambda r: bool(r.rejected))
        assert twice.content == "one"
        assert twice.rejected == ["second ack"]
        late = await sim.start_interaction("late", user=ALICE)
        await sim.interactions.wait_until(late, lambda r: bool(r.rejected), timeout=3)
        assert not late.acknowledged
        fails = await sim.invoke("fails", user=ALICE, followups=1)
        assert fails.log[:2] == ["callback:5", "delete:original"]
        assert fails.content == "The bot is busy right now"
        assert fails.ephemeral
        for _ in range(40):
            if "late" in outcome:
                break
            await asyncio.sleep(0.05)
        assert outcome == {"twice": 40060, "late": 10062}
        # The public deferral was visible (created, then deleted); the ephemeral follow-up never is.
        await log.wait_for(hikari.GuildMessageDeleteEvent)
        created = [e for e in log.of(hikari.GuildMessageCreateEvent) if e.message.interaction_metadata]
        assert [e.message.flags & hikari.MessageFlag.LOADING for e in created[-1:]] == [hikari.MessageFlag.LOADING]


async def test_unchanged_commands_are_not_registered_again(sim: DiscordSimulator) -> None:
    """The simulator returns registered commands as Discord does, so a restarted client sees no difference."""
    for _ in range(2):
        bot = make_bot(sim)
        _lightbulb_client(bot)
        async with running(bot, sim):
            assert (await sim.invoke("profile", user=ALICE)).content is not None
    command_calls = [(c.method, c.route) for c in sim.rest_calls if c.route and c.route.endswith("/commands")]
    assert command_calls == [
        ("GET", "/applications/{application_id}/commands"),
        ("PUT", "/applications/{application_id}/commands"),
        ("GET", "/applications/{application_id}/commands"),
    ]
