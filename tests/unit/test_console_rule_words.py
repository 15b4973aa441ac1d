"""The words of the XP-rules and level-roles pages (web/console/rule_words.py): ids become names, codes sentences.

Explanations are produced by the real `rewards/explain` core and passed through the API's response model, so what
is put into words here is exactly what the page gets from its twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

from synapse_async.api.admin.config import Explanation
from synapse_async.rewards.config import ChannelInfo, GuildConfig, Multiplier, NoXpTargets
from synapse_async.rewards.multipliers import explain
from synapse_async.rewards.roles import SkipReason
from synapse_async.settings import ResolvedSettings
from synapse_async.web.console.rule_words import PROBLEM_WORDS, Label, Names, explain_view, problem_words, times

CATEGORY, TEXT, GONE, ROLE_FAST, ROLE_MUTED = 100, 10, 11, 500, 501


@dataclass
class Channel:
    channel_id: int
    name: str
    type: str
    deleted: bool = False


@dataclass
class Role:
    role_id: int
    name: str
    dangerous_permissions: list[str] = field(default_factory=list)


NAMES = Names.of(
    [Channel(CATEGORY, "Community", "category"), Channel(TEXT, "general", "text"), Channel(GONE, "old", "text", True)],
    [Role(ROLE_FAST, "Booster"), Role(ROLE_MUTED, "Muted"), Role(1, "Admin", ["Administrator"])],
)


def _explained(g: GuildConfig, channel: int, roles: list[int]) -> dict[str, Any]:
    body = explain(g, channel, None, "message", roles)
    model = Explanation.model_validate({**body, "user_id": 7, "role_ids": roles})
    return model.model_dump(mode="json")


def _guild(**kw: Any) -> GuildConfig:
    return GuildConfig(
        guild_id=1,
        settings=ResolvedSettings({}),
        channels={
            CATEGORY: ChannelInfo(CATEGORY, "Community", "category", None, False),
            TEXT: ChannelInfo(TEXT, "general", "text", CATEGORY, False),
        },
        overrides=kw.get("overrides", {}),
        type_defaults=kw.get("type_defaults", {}),
        role_multipliers=kw.get("roles", {}),
        no_xp=kw.get("no_xp", NoXpTargets()),
    )


def test_every_level_role_problem_of_the_precheck_has_words() -> None:
    assert set(get_args(SkipReason)) <= set(PROBLEM_WORDS)
    assert problem_words(None) == ""
    assert "Manage Roles" in problem_words("missing_manage_roles")
    assert "above" in problem_words("role_above_bot")
    assert problem_words("something_new") == "The bot cannot assign this role (something new)."


def test_channels_and_roles_are_named_and_removed_ones_flagged() -> None:
    assert NAMES.channel(TEXT) == Label("#general")
    assert NAMES.channel(str(CATEGORY)) == Label("COMMUNITY")
    assert NAMES.channel(GONE) == Label("#old", missing=True)
    assert NAMES.channel(999) == Label("unknown channel 999", missing=True)
    assert NAMES.role(ROLE_FAST) == Label("@Booster")
    assert NAMES.role(42) == Label("deleted role 42", missing=True)


def test_pickers_offer_live_places_and_mark_dangerous_roles_without_hiding_them() -> None:
    assert [o.label for o in NAMES.place_options()] == ["COMMUNITY (category)", "#general (text)"]
    assert [o.label for o in NAMES.place_options(categories=False)] == ["#general (text)"]
    labels = {o.value: o.label for o in NAMES.role_options(mark_dangerous=True)}
    assert labels == {"500": "@Booster", "501": "@Muted", "1": "@Admin — grants Administrator"}
    assert NAMES.role_options()[2].label == "@Admin"
    assert [o.value for o in NAMES.role_options(dangerous=False)] == ["500", "501"]
    assert [o.value for o in NAMES.role_options(dangerous=True)] == ["1"]
    assert NAMES.dangerous() == (("@Admin", ("Administrator",)),)


def test_multipliers_are_shown_without_trailing_zeros() -> None:
    assert [times(v) for v in (1.0, 2.5, 0.0, 0.125, 10)] == ["×1", "×2.5", "×0", "×0.125", "×10"]


def test_an_explanation_names_the_matched_step_and_the_final_multiplier() -> None:
    g = _guild(overrides={(CATEGORY, "*"): Multiplier(2.0, 1.0)}, roles={ROLE_FAST: Multiplier(1.5, 3.0)})
    view = explain_view(_explained(g, TEXT, [ROLE_FAST, ROLE_MUTED]), NAMES, has_member=True)
    assert view.channel == Label("#general") and view.event == "messages"
    assert [(s.number, s.matched) for s in view.steps] == [(1, False), (2, False), (3, True), (4, False), (5, False)]
    matched = view.steps[2]
    assert (matched.title, matched.where.text) == ("Override on the category", "COMMUNITY")
    assert matched.tried == "messages: none, every kind: found"
    assert view.steps[1].outcome == "Does not apply here"  # not a thread
    assert view.steps[3].outcome == "Not reached (an earlier step matched)"
    assert view.rule == "Override on the category (every kind)"
    assert view.role_factors == ((Label("@Booster"), "×1.5", "×3"),)
    assert (view.final_xp, view.final_stars) == ("×3", "×3")
    assert view.no_xp == () and view.member_roles == 2


def test_a_no_xp_role_pays_nothing_and_is_named() -> None:
    g = _guild(no_xp=NoXpTargets(roles=frozenset({ROLE_MUTED})), type_defaults={("text", "message"): Multiplier(2, 2)})
    view = explain_view(_explained(g, TEXT, [ROLE_MUTED]), NAMES, has_member=True)
    assert view.no_xp == (Label("@Muted"),)
    assert (view.final_xp, view.final_stars) == ("×0", "×0")
    assert view.steps[3].matched and view.steps[3].where.text == "text channels"
    assert view.channel_multiplier == "XP ×2 · stars ×2"


def test_without_a_member_there_are_no_role_factors() -> None:
    view = explain_view(_explained(_guild(), TEXT, []), NAMES, has_member=False)
    assert view.member_roles is None and view.steps[4].matched and view.rule == "No rule: neutral"
