"""The bot's invite link (SPEC §30): scopes `bot applications.commands` and exactly the permissions the bot uses.

Pure: the client id comes from `DISCORD_CLIENT_ID` or, as Discord issues them, from the token's first segment (the
base64 of the bot's user id, which is also its application's id for every application created since 2019).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final
from urllib.parse import urlencode

import hikari

# What each permission is for: reading and answering in channels (announcements, command replies), embeds and the
# rank card attachment, resolving reaction authors from history, and level roles (§13). Nothing administrative.
BOT_PERMISSIONS: Final = (
    hikari.Permissions.VIEW_CHANNEL
    | hikari.Permissions.SEND_MESSAGES
    | hikari.Permissions.EMBED_LINKS
    | hikari.Permissions.ATTACH_FILES
    | hikari.Permissions.READ_MESSAGE_HISTORY
    | hikari.Permissions.MANAGE_ROLES
)
SCOPES: Final = ("bot", "applications.commands")


class NoClientId(ValueError):
    """Neither `DISCORD_CLIENT_ID` nor a token that names the application."""


def client_id_from_token(token: str) -> int:
    """The bot user id encoded in a bot token's first segment; ValueError if the token is not shaped like one."""
    head = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(head + "=" * (-len(head) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("the token's first segment is not base64") from None
    if not decoded.isdigit():
        raise ValueError("the token's first segment does not hold a user id")
    return int(decoded)


def resolve_client_id(client_id: str | None, token: str | None) -> int:
    if client_id:
        if not client_id.isdigit():
            raise NoClientId(f"DISCORD_CLIENT_ID={client_id!r} is not a numeric application id")
        return int(client_id)
    if token:
        try:
            return client_id_from_token(token)
        except ValueError as exc:
            raise NoClientId(f"DISCORD_TOKEN cannot name the application ({exc}); set DISCORD_CLIENT_ID") from None
    raise NoClientId("set DISCORD_CLIENT_ID (Developer Portal → your application → OAuth2 → Client ID)")


def invite_url(oauth_base: str, client_id: int) -> str:
    """`{DISCORD_OAUTH_URL}/authorize?client_id=…&scope=bot+applications.commands&permissions=…`."""
    query = urlencode({"client_id": client_id, "scope": " ".join(SCOPES), "permissions": int(BOT_PERMISSIONS)})
    return f"{oauth_base.rstrip('/')}/authorize?{query}"
