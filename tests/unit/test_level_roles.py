"""Level role rewards (SPEC §13): desired roles per mode, the pre-checked single-update plan, safe roles only, the
bot taking back only what it gave, and the preview totals."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synapse_async.rewards.roles import (
    DANGEROUS_PERMISSIONS,
    SAMPLE_SIZE,
    MemberChange,
    RoleInfo,
    RolePlan,
    RolePreview,
    RoleRefusal,
    RoleSkip,
    dangerous_permissions,
    desired_roles,
    plan_role_update,
    reward_role_refusal,
    role_skip_reason,
)

GUILD = 1000
BOT_TOP = 50
R5, R10, R20, R20B = 5005, 5010, 5020, 5021  # reward roles, by the level that grants them
MANUAL, OTHER = 7001, 7002  # roles given by hand: never touched
REWARDS = [(5, R5), (10, R10), (20, R20)]
ROLES = {
    role_id: RoleInfo(role_id, position, managed=False)
    for role_id, position in [(R5, 5), (R10, 10), (R20, 20), (R20B, 21), (MANUAL, 30), (OTHER, 60)]
}


def fs(*role_ids: int) -> frozenset[int]:
    return frozenset(role_ids)


def plan(
    current: set[int],
    level: int,
    *,
    mode: str = "stack",
    rewards: list[tuple[int, int]] | None = None,
    roles: dict[int, RoleInfo] | None = None,
    bot_top: int = BOT_TOP,
    can_manage: bool = True,
    granted: set[int] | None = None,
    protected: frozenset[int] = frozenset(),
) -> RolePlan:
    """By default every reward role the member holds was granted by the bot (the common case); `granted` narrows
    that to model roles a person gave."""
    reward_ids = {role_id for _, role_id in (REWARDS if rewards is None else rewards)}
    return plan_role_update(
        current_roles=frozenset(current),
        level=level,
        rewards=REWARDS if rewards is None else rewards,
        mode=mode,  # type: ignore[arg-type]
        roles=ROLES if roles is None else roles,
        guild_id=GUILD,
        bot_top_position=bot_top,
        bot_can_manage_roles=can_manage,
        granted=frozenset(current & reward_ids if granted is None else granted),
        protected=protected,
    )


# ---- desired roles --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "stack", "replace"),
    [
        (1, set(), set()),
        (4, set(), set()),
        (5, {R5}, {R5}),
        (9, {R5}, {R5}),
        (10, {R5, R10}, {R10}),
        (19, {R5, R10}, {R10}),
        (20, {R5, R10, R20}, {R20}),
        (1000, {R5, R10, R20}, {R20}),
    ],
)
def test_desired_roles_per_mode(level: int, stack: set[int], replace: set[int]) -> None:
    assert desired_roles(level, REWARDS, "stack") == stack
    assert desired_roles(level, REWARDS, "replace") == replace


def test_replace_keeps_every_role_at_the_top_reward_level() -> None:
    rewards = [*REWARDS, (20, R20B)]
    assert desired_roles(25, rewards, "replace") == {R20, R20B}
    assert desired_roles(19, rewards, "replace") == {R10}


def test_desired_roles_ignores_reward_order_and_rejects_unknown_modes() -> None:
    assert desired_roles(12, list(reversed(REWARDS)), "replace") == {R10}
    assert desired_roles(12, [], "stack") == frozenset()
    with pytest.raises(ValueError, match="mode"):
        desired_roles(12, REWARDS, "both")  # type: ignore[arg-type]


# ---- plans ------------------------------------------------------------------------------------------------


def test_stack_level_up_adds_missing_roles_in_one_update() -> None:
    result = plan({MANUAL}, 12)
    assert result == RolePlan(frozenset({MANUAL, R5, R10}), frozenset({R5, R10}), frozenset(), ())


def test_replace_level_up_swaps_the_old_reward_role() -> None:
    result = plan({R5, MANUAL}, 12, mode="replace")
    assert result.new_roles == fs(R10, MANUAL)
    assert (result.added, result.removed) == (fs(R10), fs(R5))


def test_level_down_removes_roles_above_the_new_level() -> None:
    result = plan({R5, R10, R20, MANUAL}, 7)
    assert result.new_roles == fs(R5, MANUAL)
    assert result.removed == fs(R10, R20)
    assert not result.added


def test_replace_level_down_restores_the_lower_role() -> None:
    result = plan({R20}, 12, mode="replace")
    assert result.new_roles == fs(R10)
    assert (result.added, result.removed) == (fs(R10), fs(R20))


def test_replace_grants_two_roles_at_the_same_level() -> None:
    result = plan({R10}, 20, mode="replace", rewards=[*REWARDS, (20, R20B)])
    assert result.new_roles == fs(R20, R20B)


def test_manual_extra_roles_are_kept() -> None:
    result = plan({MANUAL, OTHER}, 1)
    assert result.new_roles is None  # nothing to change: non-reward roles are not "undesired"
    result = plan({MANUAL, OTHER, R5}, 1)
    assert result.new_roles == fs(MANUAL, OTHER)


def test_no_change_means_no_call() -> None:
    assert plan({R5, R10}, 12) == RolePlan(None, frozenset(), frozenset(), ())
    assert plan(set(), 3) == RolePlan(None, frozenset(), frozenset(), ())


def test_role_above_the_bot_is_skipped_and_left_out_of_the_update() -> None:
    result = plan({MANUAL}, 25, bot_top=15)  # R20 sits at position 20
    assert result.skipped == (RoleSkip(R20, "role_above_bot"),)
    assert result.new_roles == fs(MANUAL, R5, R10)
    assert R20 not in result.added


def test_role_at_the_bots_own_position_is_not_below_it() -> None:
    result = plan(set(), 10, bot_top=10)
    assert result.skipped == (RoleSkip(R10, "role_above_bot"),)
    assert result.new_roles == fs(R5)


def test_role_above_the_bot_is_not_removed_either() -> None:
    result = plan({R5, R10, R20}, 12, bot_top=15)
    assert result.skipped == (RoleSkip(R20, "role_above_bot"),)
    assert result.new_roles is None  # the only change was blocked


def test_unmanageable_role_the_member_already_holds_correctly_is_not_reported() -> None:
    result = plan({R5, R10, R20}, 25, bot_top=15)
    assert result == RolePlan(None, frozenset(), frozenset(), ())


def test_managed_role_is_skipped() -> None:
    roles = {**ROLES, R10: RoleInfo(R10, 10, managed=True)}
    result = plan({R5}, 12, roles=roles)
    assert result.skipped == (RoleSkip(R10, "role_managed"),)
    assert result.new_roles is None


def test_missing_role_is_skipped() -> None:
    deleted = {**ROLES, R10: RoleInfo(R10, 10, managed=False, exists=False)}
    assert plan({R5}, 12, roles=deleted).skipped == (RoleSkip(R10, "role_missing"),)
    unknown = {role_id: info for role_id, info in ROLES.items() if role_id != R10}
    result = plan(set(), 12, roles=unknown)
    assert result.skipped == (RoleSkip(R10, "role_missing"),)
    assert result.new_roles == fs(R5)


def test_everyone_role_is_never_assigned() -> None:
    roles = {**ROLES, GUILD: RoleInfo(GUILD, 0, managed=False)}
    result = plan(set(), 12, roles=roles, rewards=[(5, GUILD), (10, R10)])
    assert result.skipped == (RoleSkip(GUILD, "role_managed"),)
    assert result.new_roles == fs(R10)


def test_without_manage_roles_every_change_is_skipped_and_no_call_is_made() -> None:
    result = plan({R20}, 12, can_manage=False)
    assert result.new_roles is None
    assert (result.added, result.removed) == (frozenset(), frozenset())
    assert result.skipped == (
        RoleSkip(R5, "missing_manage_roles"),
        RoleSkip(R10, "missing_manage_roles"),
        RoleSkip(R20, "missing_manage_roles"),
    )


def test_skip_reason_order() -> None:
    kwargs = {"guild_id": GUILD, "bot_top_position": 10}
    managed_high = {1: RoleInfo(1, 99, managed=True)}
    assert role_skip_reason(1, roles=managed_high, bot_can_manage_roles=False, **kwargs) == "missing_manage_roles"
    assert role_skip_reason(1, roles=managed_high, bot_can_manage_roles=True, **kwargs) == "role_above_bot"
    assert role_skip_reason(GUILD, roles={}, bot_can_manage_roles=True, **kwargs) == "role_managed"
    assert role_skip_reason(2, roles={2: RoleInfo(2, 3, managed=False)}, bot_can_manage_roles=True, **kwargs) is None


@pytest.mark.parametrize("mode", ["stack", "replace"])
@pytest.mark.parametrize("level", [1, 5, 12, 20, 40])
@pytest.mark.parametrize("current", [set(), {R5}, {R10, MANUAL}, {R5, R10, R20}, {R20, OTHER}])
def test_planning_again_from_the_result_needs_no_call(mode: str, level: int, current: set[int]) -> None:
    first = plan(current, level, mode=mode)
    applied = current if first.new_roles is None else set(first.new_roles)
    assert plan(applied, level, mode=mode).new_roles is None


# ---- properties -----------------------------------------------------------------------------------------

ROLE_IDS = list(range(1, 13))
GUILD_ROLES = st.dictionaries(
    st.sampled_from(ROLE_IDS),
    st.builds(RoleInfo, role_id=st.just(0), position=st.integers(0, 30), managed=st.booleans(), exists=st.booleans()),
).map(lambda roles: {role_id: RoleInfo(role_id, i.position, i.managed, i.exists) for role_id, i in roles.items()})


@settings(max_examples=500)
@given(
    current=st.frozensets(st.sampled_from([*ROLE_IDS, GUILD])),
    rewards=st.lists(st.tuples(st.integers(1, 30), st.sampled_from([*ROLE_IDS, GUILD])), max_size=8),
    level=st.integers(1, 40),
    mode=st.sampled_from(["stack", "replace"]),
    roles=GUILD_ROLES,
    bot_top=st.integers(0, 31),
    can_manage=st.booleans(),
)
def test_plans_touch_only_reward_roles_and_converge(
    current: frozenset[int],
    rewards: list[tuple[int, int]],
    level: int,
    mode: str,
    roles: dict[int, RoleInfo],
    bot_top: int,
    can_manage: bool,
) -> None:
    result = plan(set(current), level, mode=mode, rewards=rewards, roles=roles, bot_top=bot_top, can_manage=can_manage)
    reward_ids = {role_id for _, role_id in rewards}
    desired = desired_roles(level, rewards, mode)  # type: ignore[arg-type]
    final = current if result.new_roles is None else result.new_roles
    blocked = {skip.role_id for skip in result.skipped}

    assert final - reward_ids == current - reward_ids  # non-reward roles untouched
    assert (final & reward_ids) <= desired | blocked  # only skipped roles may linger undesired
    assert desired - final <= blocked  # only skipped roles may be missing
    assert result.added == final - current and result.removed == current - final
    assert not (result.added | result.removed) & blocked
    assert result.new_roles is None or result.new_roles != current  # a call always changes something
    assert all(role_skip_reason(r, roles=roles, guild_id=GUILD, bot_top_position=bot_top,
                                bot_can_manage_roles=can_manage) == s.reason
               for s in result.skipped for r in [s.role_id])  # fmt: skip
    again = plan(set(final), level, mode=mode, rewards=rewards, roles=roles, bot_top=bot_top, can_manage=can_manage)
    assert again.new_roles is None


@settings(max_examples=300)
@given(
    current=st.frozensets(st.sampled_from(ROLE_IDS)),
    rewards=st.lists(st.tuples(st.integers(1, 30), st.sampled_from(ROLE_IDS)), max_size=8),
    level=st.integers(1, 40),
    mode=st.sampled_from(["stack", "replace"]),
)
def test_when_every_role_is_manageable_reward_roles_equal_desired(
    current: frozenset[int], rewards: list[tuple[int, int]], level: int, mode: str
) -> None:
    roles = {role_id: RoleInfo(role_id, 1, managed=False) for role_id in ROLE_IDS}
    result = plan(set(current), level, mode=mode, rewards=rewards, roles=roles)
    final = current if result.new_roles is None else result.new_roles
    reward_ids = {role_id for _, role_id in rewards}
    assert final & reward_ids == desired_roles(level, rewards, mode)  # type: ignore[arg-type]
    assert not result.skipped


# ---- the bot only takes back what it gave -----------------------------------------------------------------


def test_a_reward_role_a_person_gave_is_never_removed() -> None:
    # R10 and R20 came from a person (or before they became rewards): a level-down keeps them; R5 stays desired.
    result = plan({R5, R10, R20, MANUAL}, 7, granted=set())
    assert result == RolePlan(None, frozenset(), frozenset(), ())
    # Only the copy the bot granted goes.
    result = plan({R5, R10, R20, MANUAL}, 7, granted={R10})
    assert (result.new_roles, result.removed) == (fs(R5, R20, MANUAL), fs(R10))


def test_replace_mode_removes_only_granted_lower_roles() -> None:
    assert plan({R5, MANUAL}, 12, mode="replace", granted=set()).new_roles == fs(R5, R10, MANUAL)
    assert plan({R5, MANUAL}, 12, mode="replace", granted={R5}).new_roles == fs(R10, MANUAL)


def test_a_granted_role_that_is_no_longer_a_reward_is_taken_back() -> None:
    result = plan({R5, OTHER}, 12, rewards=[(10, R10)], granted={R5})
    assert (result.added, result.removed) == (fs(R10), fs(R5))
    assert result.new_roles == fs(R10, OTHER)


# ---- safe roles only --------------------------------------------------------------------------------------

SPEC_NAMES = {
    "Administrator", "Manage Server", "Manage Roles", "Manage Channels", "Manage Webhooks", "Manage Messages",
    "Manage Threads", "Manage Nicknames", "Manage Events", "Manage Expressions", "Ban Members", "Kick Members",
    "Moderate Members", "Mention Everyone", "View Audit Log",
}  # fmt: skip


def test_dangerous_permissions_are_the_fifteen_of_the_spec() -> None:
    assert {name for _, name in DANGEROUS_PERMISSIONS} == SPEC_NAMES
    assert len({bit for bit, _ in DANGEROUS_PERMISSIONS}) == 15
    every = sum(bit for bit, _ in DANGEROUS_PERMISSIONS)
    assert set(dangerous_permissions(every)) == SPEC_NAMES
    safe = (1 << 0) | (1 << 6) | (1 << 10) | (1 << 11) | (1 << 20) | (1 << 26) | (1 << 31)  # invite, react, chat…
    assert dangerous_permissions(safe) == ()
    assert dangerous_permissions((1 << 3) | (1 << 2) | safe) == ("Administrator", "Ban Members")


def test_reward_role_refusal() -> None:
    admin = RoleInfo(1, 5, managed=False, permissions=1 << 3)
    assert reward_role_refusal(admin, admin_role_ids=(), caller_top_position=None) == RoleRefusal(
        "The role grants Administrator; level rewards must be safe roles.", ("Administrator",)
    )
    plain = RoleInfo(2, 5, managed=False, permissions=1 << 6)
    refused = reward_role_refusal(plain, admin_role_ids=(2,), caller_top_position=None)
    assert refused is not None and "access.admin_role_ids" in refused.message and refused.permissions == ()
    assert reward_role_refusal(plain, admin_role_ids=(), caller_top_position=None) is None  # service token, owner
    assert reward_role_refusal(plain, admin_role_ids=(), caller_top_position=6) is None  # strictly below
    for top in (5, 4):  # equal or above the caller's highest role
        refused = reward_role_refusal(plain, admin_role_ids=(), caller_top_position=top)
        assert refused is not None and "highest role" in refused.message


def test_a_role_that_became_dangerous_is_not_added_but_the_bots_copy_can_be_taken_back() -> None:
    roles = {**ROLES, R10: RoleInfo(R10, 10, managed=False, permissions=1 << 28)}  # gained Manage Roles
    result = plan({MANUAL}, 12, roles=roles)
    assert result.skipped == (RoleSkip(R10, "dangerous_role"),)
    assert result.new_roles == fs(MANUAL, R5)
    down = plan({R5, R10}, 7, roles=roles, granted={R5, R10})
    assert (down.removed, down.skipped) == (fs(R10), ())


def test_an_admin_role_is_never_added() -> None:
    result = plan(set(), 12, protected=frozenset({R5}))
    assert result.skipped == (RoleSkip(R5, "dangerous_role"),)
    assert result.new_roles == fs(R10)
    assert role_skip_reason(R5, roles=ROLES, guild_id=GUILD, bot_top_position=BOT_TOP, bot_can_manage_roles=True,
                            protected={R5}) == "dangerous_role"  # fmt: skip


@settings(max_examples=300)
@given(
    current=st.frozensets(st.sampled_from(ROLE_IDS)),
    granted=st.frozensets(st.sampled_from(ROLE_IDS)),
    rewards=st.lists(st.tuples(st.integers(1, 30), st.sampled_from(ROLE_IDS)), max_size=8),
    level=st.integers(1, 40),
    mode=st.sampled_from(["stack", "replace"]),
)
def test_only_granted_roles_are_ever_removed(
    current: frozenset[int], granted: frozenset[int], rewards: list[tuple[int, int]], level: int, mode: str
) -> None:
    roles = {role_id: RoleInfo(role_id, 1, managed=False) for role_id in ROLE_IDS}
    result = plan(set(current), level, mode=mode, rewards=rewards, roles=roles, granted=set(granted))
    assert result.removed <= granted & current
    final = current if result.new_roles is None else result.new_roles
    assert desired_roles(level, rewards, mode) <= final  # type: ignore[arg-type]
    assert final - desired_roles(level, rewards, mode) == current - (granted | desired_roles(level, rewards, mode))  # type: ignore[arg-type]


# ---- preview ----------------------------------------------------------------------------------------------


def test_preview_counts_every_change_and_samples_the_first_twenty() -> None:
    preview = RolePreview()
    for user_id in range(30):
        preview.add(user_id, f"m{user_id}", plan({R20}, 12, granted={R20}))  # +R5 +R10 −R20
        preview.add(100 + user_id, "unchanged", plan({R5}, 5))
    assert (preview.adds, preview.removes, preview.members_affected) == (60, 30, 30)
    assert len(preview.sample) == SAMPLE_SIZE == 20
    assert preview.sample[0] == MemberChange(0, "m0", tuple(sorted((R5, R10))), (R20,))
    assert [m.user_id for m in preview.sample] == list(range(20))
