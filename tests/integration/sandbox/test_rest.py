"""REST through hikari's real REST client: role-edit enforcement, messages, fetches, auth and OAuth2."""

from __future__ import annotations

import urllib.parse

import aiohttp
import hikari
import pytest

from synapse_async.sandbox import (
    SANDBOX_BOT_ID,
    SANDBOX_FIRST_MEMBER_ID,
    SANDBOX_GUILD_ID,
    SANDBOX_OWNER_ID,
    DiscordSimulator,
)
from synapse_async.sandbox.world import (
    CHANNEL_GENERAL_ID,
    ROLE_ADMIN_ID,
    ROLE_BOT_ID,
    ROLE_MEMBER_ID,
    Overwrite,
    Permission,
)

from .conftest import EventLog, running

ALICE = SANDBOX_FIRST_MEMBER_ID
MEMBER_ROUTE = "/guilds/{guild_id}/members/{user_id}"


def _member_patches(sim: DiscordSimulator) -> list[int]:
    return [c.status for c in sim.rest_calls if c.method == "PATCH" and c.route == MEMBER_ROUTE]


async def test_member_role_edits_follow_discord_rules(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.MemberUpdateEvent)
    async with running(bot, sim):
        level = await sim.create_role("Level 10")  # position 1: below the bot's role
        above = await sim.create_role("Above bot", position=sim.guild().roles[ROLE_BOT_ID].position + 1)

        member = await bot.rest.edit_member(
            SANDBOX_GUILD_ID, ALICE, roles=[ROLE_MEMBER_ID, level], reason="Level roles"
        )
        assert set(member.role_ids) >= {ROLE_MEMBER_ID, level}
        call = await sim.wait_for_rest(lambda c: c.route == MEMBER_ROUTE and c.status == 200)
        assert call.json == {"roles": [str(ROLE_MEMBER_ID), str(level)]}
        assert call.audit_reason == "Level roles"
        assert call.path == f"/guilds/{SANDBOX_GUILD_ID}/members/{ALICE}"
        update = (await log.wait_for(hikari.MemberUpdateEvent))[0]
        assert level in update.member.role_ids

        with pytest.raises(hikari.ForbiddenError) as above_bot:
            await bot.rest.edit_member(SANDBOX_GUILD_ID, ALICE, roles=[ROLE_MEMBER_ID, level, above])
        assert above_bot.value.code == 50013
        with pytest.raises(hikari.ForbiddenError):  # Admin is below the bot, but the bot's own role is managed
            await bot.rest.edit_member(SANDBOX_GUILD_ID, ALICE, roles=[ROLE_MEMBER_ID, ROLE_BOT_ID])
        with pytest.raises(hikari.BadRequestError):
            await bot.rest.edit_member(SANDBOX_GUILD_ID, ALICE, roles=[ROLE_MEMBER_ID, 999])
        with pytest.raises(hikari.NotFoundError):
            await bot.rest.edit_member(SANDBOX_GUILD_ID, 42424242424242424, roles=[])
        await bot.rest.add_role_to_member(SANDBOX_GUILD_ID, ALICE, ROLE_ADMIN_ID)
        assert ROLE_ADMIN_ID in sim.guild().members[ALICE].roles

        await sim.update_role(ROLE_BOT_ID, permissions=int(Permission.VIEW_CHANNEL | Permission.SEND_MESSAGES))
        with pytest.raises(hikari.ForbiddenError):
            await bot.rest.edit_member(SANDBOX_GUILD_ID, ALICE, roles=[ROLE_MEMBER_ID])
        assert _member_patches(sim) == [200, 403, 403, 400, 404, 403]
        assert sim.guild().members[ALICE].roles == [ROLE_MEMBER_ID, level, ROLE_ADMIN_ID]


async def test_bot_messages_and_fetches(sim: DiscordSimulator, bot: hikari.GatewayBot) -> None:
    log = EventLog(bot, hikari.GuildMessageCreateEvent)
    async with running(bot, sim):
        original = await sim.message(ALICE, "general", "level me up")
        embed = hikari.Embed(title="Level up!", description="Alice reached level 2")
        sent = await bot.rest.create_message(
            CHANNEL_GENERAL_ID,
            f"<@{ALICE}> congrats",
            embed=embed,
            user_mentions=[ALICE],
            reply=original,
        )
        assert sent.author.id == SANDBOX_BOT_ID
        assert sent.embeds[0].title == "Level up!"
        call = await sim.wait_for_rest(lambda c: c.route == "/channels/{channel_id}/messages" and c.method == "POST")
        assert call.json["allowed_mentions"] == {"parse": [], "users": [str(ALICE)]}
        assert call.json["embeds"][0]["title"] == "Level up!"
        assert sim.world.message(sent.id).allowed_mentions == call.json["allowed_mentions"]
        own = await log.wait_for(hikari.GuildMessageCreateEvent, lambda e: e.message_id == sent.id)
        assert own[0].is_bot  # Discord echoes the bot's own messages over the gateway

        fetched = await bot.rest.fetch_message(CHANNEL_GENERAL_ID, original)
        assert fetched.content == "level me up"
        await sim.delete_message(original)
        with pytest.raises(hikari.NotFoundError) as missing:
            await bot.rest.fetch_message(CHANNEL_GENERAL_ID, original)
        assert missing.value.code == 10008
        call = sim.rest_calls[-1]
        assert call.status == 404
        assert call.response == {"message": "Unknown Message", "code": 10008}

        guild = await bot.rest.fetch_guild(SANDBOX_GUILD_ID)
        assert guild.name == "Sandbox"
        assert {c.name for c in await bot.rest.fetch_guild_channels(SANDBOX_GUILD_ID)} >= {"general", "showcase"}
        assert len(await bot.rest.fetch_roles(SANDBOX_GUILD_ID)) == 4
        member = await bot.rest.fetch_member(SANDBOX_GUILD_ID, ALICE)
        assert member.username == sim.world.user(ALICE).username
        me = await bot.rest.fetch_my_user()
        assert me.id == SANDBOX_BOT_ID
        assert [g.id async for g in bot.rest.fetch_my_guilds()] == [SANDBOX_GUILD_ID]
        hidden = await sim.create_channel(
            "staff", overwrites=[Overwrite(id=SANDBOX_GUILD_ID, type=0, deny=int(Permission.VIEW_CHANNEL))]
        )
        with pytest.raises(hikari.ForbiddenError) as no_access:
            await bot.rest.create_message(hidden, "no")
        assert no_access.value.code == 50001
        with pytest.raises(hikari.BadRequestError):
            await bot.rest.create_message(sim.channel_id("Community"), "categories hold no messages")


async def test_requests_need_the_bot_token(sim: DiscordSimulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(sim.api_url + "/gateway/bot", headers={"Authorization": "Bot wrong"}) as response:
            assert response.status == 401
            assert await response.json() == {"message": "401: Unauthorized", "code": 0}
        async with http.get(sim.api_url + "/gateway/bot", headers={"Authorization": f"Bot {sim.token}"}) as response:
            body = await response.json()
            assert body["url"] == sim.gateway_url
            assert body["session_start_limit"]["max_concurrency"] >= 1
    assert [c.status for c in sim.rest_calls] == [401, 200]


async def test_oauth2_code_flow(sim: DiscordSimulator) -> None:
    redirect = "http://127.0.0.1:9/api/auth/callback"
    query = {
        "response_type": "code",
        "client_id": str(sim.client_id),
        "redirect_uri": redirect,
        "scope": "identify guilds",
        "state": "xyz",
    }
    async with aiohttp.ClientSession() as http:
        async with http.get(sim.oauth_url + "/authorize", params=query, allow_redirects=False) as response:
            assert response.status == 302
            location = urllib.parse.urlparse(response.headers["Location"])
        params = dict(urllib.parse.parse_qsl(location.query))
        assert location.path == "/api/auth/callback"
        assert params["state"] == "xyz"

        rest_app = hikari.RESTApp(url=sim.api_url)
        await rest_app.start()
        try:
            async with rest_app.acquire(None) as client:
                token = await client.authorize_access_token(sim.client_id, sim.client_secret, params["code"], redirect)
                with pytest.raises(hikari.BadRequestError):  # codes are single-use
                    await client.authorize_access_token(sim.client_id, sim.client_secret, params["code"], redirect)
            async with rest_app.acquire(token.access_token, hikari.TokenType.BEARER) as client:
                me = await client.fetch_my_user()
                assert me.id == SANDBOX_OWNER_ID
                guilds = [g async for g in client.fetch_my_guilds()]
                assert [g.id for g in guilds] == [SANDBOX_GUILD_ID]
                assert guilds[0].is_owner
        finally:
            await rest_app.close()

        query["as_user"] = str(ALICE)
        async with http.get(sim.oauth_url + "/authorize", params=query, allow_redirects=False) as response:
            code = dict(urllib.parse.parse_qsl(urllib.parse.urlparse(response.headers["Location"]).query))["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect,
            "client_id": str(sim.client_id),
            "client_secret": sim.client_secret,
        }
        async with http.post(sim.api_url + "/oauth2/token", data=form) as response:
            access = (await response.json())["access_token"]
        headers = {"Authorization": f"Bearer {access}"}
        async with http.get(sim.api_url + "/users/@me", headers=headers) as response:
            assert (await response.json())["id"] == str(ALICE)
        async with http.get(sim.api_url + "/users/@me/guilds", headers=headers) as response:
            (entry,) = await response.json()
            assert entry["owner"] is False
        async with http.post(sim.api_url + "/oauth2/token", data={**form, "client_secret": "x"}) as response:
            assert response.status == 401
    assert any(c.route == "/oauth2/authorize" and c.status == 302 for c in sim.rest_calls)
