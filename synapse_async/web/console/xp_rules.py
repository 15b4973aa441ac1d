"""XP rules (SPEC §28.3, §9.1): channel-type defaults, channel and category overrides, role multipliers, no-XP
channels and roles, and the explain box.

Every rule table is read from its twin and shown with names (channels, categories and roles from the channels and
roles twins; rules on removed channels or roles are flagged). Each add, change and delete is a form the browser
sends to the rule's `PUT`/`DELETE` route (the rule's key goes into the URL template, e.g.
`…/channel-overrides/{channel_id}/{event_type}`). Choices and bounds come from the routes' own models, so the forms
cannot drift from what the API accepts. The explain box is a plain GET form: the page asks `GET …/rewards/explain`
with the same query and shows the answer in words, so it works without the script.
"""

from __future__ import annotations

from typing import Any, Final, get_args

from aiohttp import web

from synapse_async.api.admin.config import (
    ChannelItem,
    Explanation,
    MultiplierBody,
    MultiplierChannelType,
    NoXpItem,
    OverrideBody,
    OverrideItem,
    RewardEventType,
    RoleItem,
    RoleMultiplierItem,
    RuleEventType,
    TypeDefaultItem,
    admin_channels,
    admin_explain,
    admin_no_xp,
    admin_overrides,
    admin_role_multipliers,
    admin_roles,
    admin_type_defaults,
)
from synapse_async.api.admin.members import MemberRowModel, admin_members
from synapse_async.api.errors import ApiError
from synapse_async.api.schema import Items, Page
from synapse_async.web.console.forms import Option
from synapse_async.web.console.gate import Console, console_page
from synapse_async.web.console.rule_words import EVENT_WORDS, Names, event_words, explain_view, kind_of, times
from synapse_async.web.site import render

EXPLAIN_KEYS: Final = ("channel_id", "event_type", "user_id")


def _bounds(model: type[MultiplierBody], name: str) -> dict[str, Any]:
    """min/max of a multiplier field as the route's model declares them (0–10)."""
    spec = model.model_json_schema()["properties"][name]
    return {"min": spec.get("minimum"), "max": spec.get("maximum")}


def _reason_max() -> int | None:
    spec = OverrideBody.model_json_schema()["properties"]["reason"]
    for option in spec.get("anyOf", [spec]):
        if "maxLength" in option:
            return int(option["maxLength"])
    return None


def _event_options(kinds: tuple[str, ...]) -> tuple[Option, ...]:
    return tuple(Option(k, EVENT_WORDS.get(k, k)) for k in kinds)


async def _explain(console: Console, names: Names) -> dict[str, Any]:
    """The explain box: the query the admin sent (if any), and the twin's answer in words or its error."""
    query = {k: v for k in EXPLAIN_KEYS if (v := console.request.query.get(k, "").strip())}
    box: dict[str, Any] = {"query": query, "view": None, "error": None, "details": ()}
    if "channel_id" not in query:
        return box
    query.setdefault("event_type", "message")
    try:
        answer = await console.ask(admin_explain, Explanation, query=query)
    except ApiError as exc:
        box["error"] = exc.message
        details = exc.details if isinstance(exc.details, list) else []
        box["details"] = tuple(
            f"{str(d.get('field', '')).removeprefix('query.')}: {d.get('message') or d.get('problem')}"
            for d in details
            if isinstance(d, dict)
        )
        return box
    box["view"] = explain_view(answer.model_dump(mode="json"), names, "user_id" in query)
    return box


@console_page
async def xp_rules_page(request: web.Request, console: Console) -> web.StreamResponse:
    channels = (await console.ask(admin_channels, Items[ChannelItem])).items
    roles = (await console.ask(admin_roles, Items[RoleItem])).items
    names = Names.of(channels, roles)
    defaults = (await console.ask(admin_type_defaults, Items[TypeDefaultItem])).items
    overrides = (await console.ask(admin_overrides, Items[OverrideItem])).items
    role_rules = (await console.ask(admin_role_multipliers, Items[RoleMultiplierItem])).items
    no_xp = (await console.ask(admin_no_xp, Items[NoXpItem])).items
    members = await console.ask(admin_members, Page[MemberRowModel], query={"sort": "name", "page_size": 100})
    overrides = sorted(overrides, key=lambda o: (names.channel(o.channel_id).text.lower(), o.event_type))
    context = console.context(
        "xp-rules",
        names=names,
        defaults=sorted(defaults, key=lambda d: (d.channel_type, d.event_type)),
        overrides=overrides,
        role_rules=role_rules,
        no_xp_channels=[n for n in no_xp if n.target_type == "channel"],
        no_xp_roles=[n for n in no_xp if n.target_type == "role"],
        places=names.place_options(),
        explain_channels=names.place_options(categories=False),
        role_options=names.role_options(),
        member_options=tuple(Option(str(m.user_id), m.display_name) for m in members.items),
        member_total=members.total,
        channel_types=tuple(Option(t, kind_of(t)) for t in get_args(MultiplierChannelType)),
        rule_events=_event_options(get_args(RuleEventType)),
        reward_events=_event_options(get_args(RewardEventType)),
        mult=_bounds(MultiplierBody, "xp_multiplier"),
        reason_max=_reason_max(),
        event_words=event_words,
        kind_of=kind_of,
        times=times,
        explain=await _explain(console, names),
    )
    return render(request, "console/xp_rules.html", context, private=True)


def install(app: web.Application) -> None:
    app.router.add_get("/admin/g/{guild_id}/xp-rules", xp_rules_page)
