"""Words for the XP-rules and level-roles pages (SPEC §28.3): ids become names, API codes become sentences.

The twins answer with ids and codes (`channel_id`, `override:category`, `role_above_bot`); an admin reads names and
reasons. Everything here is pure (no I/O, unit-tested): the pages ask the channels and roles twins once and build a
`Names` from their items, then turn rules, explanations and level-role problems into what the templates show.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from synapse_async.web.console.forms import Option


class ChannelLike(Protocol):
    @property
    def channel_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def deleted(self) -> bool: ...


class RoleLike(Protocol):
    @property
    def role_id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def dangerous_permissions(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Label:
    """A channel, category or role as shown: its name, and whether it is gone from the guild (rules on removed
    channels stay listed and flagged, SPEC §6.1)."""

    text: str
    missing: bool = False


@dataclass(frozen=True, slots=True)
class Names:
    """The guild's channels (categories included, removed ones too) and live roles, by id."""

    channels: Mapping[int, ChannelLike] = field(default_factory=dict)
    roles: Mapping[int, RoleLike] = field(default_factory=dict)

    @classmethod
    def of(cls, channels: Iterable[ChannelLike], roles: Iterable[RoleLike]) -> Names:
        return cls({c.channel_id: c for c in channels}, {r.role_id: r for r in roles})

    def channel(self, channel_id: int | str | None) -> Label:
        """`#general`, `GAMES` for a category; a removed channel keeps its name and is flagged."""
        if channel_id is None:
            return Label("—")
        c = self.channels.get(int(channel_id))
        if c is None:
            return Label(f"unknown channel {channel_id}", missing=True)
        text = c.name.upper() if c.type == "category" else f"#{c.name}"
        return Label(text, missing=c.deleted)

    def role(self, role_id: int | str | None) -> Label:
        if role_id is None:
            return Label("—")
        r = self.roles.get(int(role_id))
        return Label(f"@{r.name}", False) if r is not None else Label(f"deleted role {role_id}", missing=True)

    def place_options(self, categories: bool = True) -> tuple[Option, ...]:
        """Live channels (and categories) for a picker: categories first, then channels, each by name."""
        live = [c for c in self.channels.values() if not c.deleted]
        cats = sorted((c for c in live if c.type == "category"), key=lambda c: c.name.lower()) if categories else []
        chans = sorted((c for c in live if c.type != "category"), key=lambda c: c.name.lower())
        return tuple(
            Option(str(c.channel_id), f"{self.channel(c.channel_id).text} ({kind_of(c.type)})") for c in cats + chans
        )

    def role_options(self, mark_dangerous: bool = False, dangerous: bool | None = None) -> tuple[Option, ...]:
        """Roles highest first (as the twin lists them); with `mark_dangerous`, a role that grants a dangerous
        permission says so in its label, though it stays selectable: the API decides (SPEC §13). `dangerous`
        True or False keeps only the roles that do or do not grant one."""
        out = []
        for r in self.roles.values():
            if dangerous is not None and bool(r.dangerous_permissions) != dangerous:
                continue
            label = f"@{r.name}"
            if mark_dangerous and r.dangerous_permissions:
                label += " — grants " + ", ".join(r.dangerous_permissions)
            out.append(Option(str(r.role_id), label))
        return tuple(out)

    def dangerous(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(role name, dangerous permissions) of every role that cannot become a level reward by its permissions."""
        return tuple(
            (f"@{r.name}", tuple(r.dangerous_permissions)) for r in self.roles.values() if r.dangerous_permissions
        )


def kind_of(channel_type: str) -> str:
    return {"announcement": "announcements", "category": "category", "stage": "stage"}.get(channel_type, channel_type)


EVENT_WORDS: Final[Mapping[str, str]] = {
    "*": "every kind",
    "message": "messages",
    "reaction_given": "reactions given",
    "reaction_received": "reactions received",
    "thread_create": "threads created",
    "voice_tick": "voice time",
}


def event_words(event_type: str | None) -> str:
    return EVENT_WORDS.get(event_type or "", event_type or "—")


def times(value: float) -> str:
    """A multiplier as the page shows it: `×1.5`, `×0` (no trailing zeros, at most the 3 stored decimals)."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"×{text}"


# --- the explanation (GET …/rewards/explain) -----------------------------------------------------------------------

STEP_TITLES: Final[Mapping[str, str]] = {
    "override:channel": "Override on the channel",
    "override:parent": "Override on the thread's parent",
    "override:category": "Override on the category",
    "type_default": "Default for the channel type",
    "default": "No rule: neutral",
}


@dataclass(frozen=True, slots=True)
class StepRow:
    number: int
    title: str
    where: Label
    tried: str
    outcome: str
    matched: bool


@dataclass(frozen=True, slots=True)
class ExplainView:
    """An explanation as sentences and rows: one row per §9.1 step, the role factors, the no-XP hits, the result."""

    channel: Label
    event: str
    steps: tuple[StepRow, ...]
    rule: str
    channel_multiplier: str
    role_factors: tuple[tuple[Label, str, str], ...]
    role_multiplier: str
    no_xp: tuple[Label, ...]
    final_xp: str
    final_stars: str
    member_roles: int | None


def _tried(lookups: Sequence[Mapping[str, Any]]) -> str:
    if not lookups:
        return "—"
    return ", ".join(f"{event_words(str(x['event_type']))}: {'found' if x['found'] else 'none'}" for x in lookups)


def _outcome(step: Mapping[str, Any]) -> str:
    if step.get("matched"):
        return "Matched: this rule applies"
    if not step.get("applies"):
        return "Does not apply here"
    if not step.get("consulted"):
        return "Not reached (an earlier step matched)"
    return "No rule"


def explain_view(body: Mapping[str, Any], names: Names, has_member: bool) -> ExplainView:
    """The `rewards/explain` answer in words, with names for every channel, category and role."""
    rows = []
    for step in body["steps"]:
        rule = str(step["rule"])
        if rule == "type_default":
            where = Label(kind_of(str(step["channel_type"])) + " channels") if step.get("channel_type") else Label("—")
        elif rule == "default":
            where = Label("everywhere")
        else:
            where = names.channel(step.get("target_id"))
        rows.append(
            StepRow(
                number=int(step["step"]),
                title=STEP_TITLES.get(rule, rule),
                where=where,
                tried=_tried(step.get("lookups") or ()),
                outcome=_outcome(step),
                matched=bool(step.get("matched")),
            )
        )
    ch = body["channel_multiplier"]
    rm = body["role_multiplier"]
    fin = body["final_multiplier"]
    no_xp = body["no_xp"]
    rule = str(body["channel_rule"])
    rule_text = STEP_TITLES.get(rule, rule)
    if body.get("channel_rule_event_type"):
        rule_text += f" ({event_words(str(body['channel_rule_event_type']))})"
    return ExplainView(
        channel=names.channel(body.get("channel_id")),
        event=event_words(str(body["event_type"])),
        steps=tuple(rows),
        rule=rule_text,
        channel_multiplier=f"XP {times(ch['xp'])} · stars {times(ch['stars'])}",
        role_factors=tuple(
            (names.role(r["role_id"]), times(float(r["xp"])), times(float(r["stars"]))) for r in body["role_factors"]
        ),
        role_multiplier=f"XP {times(rm['xp'])} · stars {times(rm['stars'])}",
        no_xp=tuple(
            [names.channel(c) for c in no_xp.get("channel_ids", ())]
            + [names.role(r) for r in no_xp.get("role_ids", ())]
        ),
        final_xp=times(float(fin["xp"])),
        final_stars=times(float(fin["stars"])),
        member_roles=len(body.get("role_ids") or ()) if has_member else None,
    )


# --- level-role problems (SPEC §13 pre-check) ----------------------------------------------------------------------

PROBLEM_WORDS: Final[Mapping[str, str]] = {
    "missing_manage_roles": (
        "The bot lacks the Manage Roles permission, so it cannot give or take any role. Grant it on Discord."
    ),
    "role_above_bot": (
        "This role is at or above the bot's highest role. Move the bot's role above it in Server Settings → Roles."
    ),
    "role_managed": "An integration or Discord itself manages this role, so nobody can hand it out.",
    "role_missing": "This role was deleted on Discord. Remove the reward or map another role.",
    "dangerous_role": (
        "This role now grants a dangerous permission or is an admin role, so the bot no longer hands it out."
    ),
}


def problem_words(problem: str | None) -> str:
    """Why a reward role is skipped by a sync, in words; "" when it is assignable."""
    if problem is None:
        return ""
    return PROBLEM_WORDS.get(problem, f"The bot cannot assign this role ({problem.replace('_', ' ')}).")
