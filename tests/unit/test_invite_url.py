"""`invite-url` (SPEC §30): the scopes, exactly the permissions the bot uses, the client id from config or token."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import hikari
import pytest

from synapse_async.golive.invite import BOT_PERMISSIONS, NoClientId, client_id_from_token, invite_url, resolve_client_id
from synapse_async.sandbox.server import make_bot_token


def test_permissions_are_the_six_the_bot_uses() -> None:
    P = hikari.Permissions
    expected = [P.VIEW_CHANNEL, P.SEND_MESSAGES, P.EMBED_LINKS, P.ATTACH_FILES, P.READ_MESSAGE_HISTORY, P.MANAGE_ROLES]
    assert int(BOT_PERMISSIONS) == sum(int(p) for p in expected) == 268_553_216
    assert not BOT_PERMISSIONS & (P.ADMINISTRATOR | P.MANAGE_GUILD | P.MENTION_ROLES)


def test_url_carries_client_scopes_and_permissions() -> None:
    url = invite_url("https://discord.com/oauth2/", 123)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://discord.com/oauth2/authorize"
    assert parse_qs(parts.query) == {
        "client_id": ["123"],
        "scope": ["bot applications.commands"],
        "permissions": ["268553216"],
    }


def test_client_id_from_the_token_first_segment() -> None:
    assert client_id_from_token(make_bot_token(987654321098765432)) == 987654321098765432
    assert resolve_client_id(None, make_bot_token(42)) == 42
    assert resolve_client_id("77", make_bot_token(42)) == 77  # the configured id wins


@pytest.mark.parametrize(
    ("client_id", "token"), [(None, None), ("abc", None), (None, "!!!.x.y"), (None, "aGVsbG8.x.y")]
)
def test_no_usable_id_says_what_to_set(client_id: str | None, token: str | None) -> None:
    with pytest.raises(NoClientId) as caught:
        resolve_client_id(client_id, token)
    assert "DISCORD_CLIENT_ID" in str(caught.value)


def test_banner_is_a_few_lines_naming_pages_api_and_sandbox() -> None:
    from synapse_async.__main__ import banner_lines

    sandbox = banner_lines("http://127.0.0.1:8080", 100000000000000001)
    assert len(sandbox) <= 6
    text = "\n".join(sandbox)
    for where in ("/g/100000000000000001", "/api/openapi.json", "/sandbox", "/health"):
        assert "http://127.0.0.1:8080" + where in text
    live = "\n".join(banner_lines("https://bot.example.com", None))
    assert "/sandbox" not in live and "https://bot.example.com/api/openapi.json" in live
