"""Channel, category and role pickers from the guild's structure (the channels and roles twins): names, not ids."""

from __future__ import annotations

from synapse_async.api.admin.config import ChannelItem, RoleItem, admin_channels, admin_roles
from synapse_async.api.schema import Items
from synapse_async.web.console.forms import Option
from synapse_async.web.console.gate import Console

TEXT_CHANNEL_TYPES = frozenset({"text", "announcement"})


async def pickers(console: Console) -> tuple[tuple[Option, ...], tuple[Option, ...], tuple[Option, ...]]:
    """(text channels, channels and categories, roles) as picker options, named as in Discord."""
    channels = (await console.ask(admin_channels, Items[ChannelItem])).items
    roles = (await console.ask(admin_roles, Items[RoleItem])).items
    live = [c for c in channels if not c.deleted]
    text = tuple(Option(str(c.channel_id), f"#{c.name}") for c in live if c.type in TEXT_CHANNEL_TYPES)
    places = tuple(Option(str(c.channel_id), c.name.upper() if c.type == "category" else f"#{c.name}") for c in live)
    role_options = tuple(Option(str(r.role_id), f"@{r.name}") for r in roles)
    return text, places, role_options
