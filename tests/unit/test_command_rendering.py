"""Pure pieces of the slash commands (no I/O): escaping, bars, ranks with ties, embeds, input rules."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from synapse_async.bot.render import (
    SECRET,
    escape,
    leaderboard_embed,
    number,
    profile_embed,
    progress_bar,
    rank_label,
)
from synapse_async.rewards.leveling import curve_for
from synapse_async.services.catalogue import NewTemplate, template_problems
from synapse_async.services.member_settings import github_problem
from synapse_async.services.seasons import days_problem, name_problem
from synapse_async.services.standings import Badge, Board, BoardRow, Profile, SeasonLine, rank_rows

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def test_escape_defuses_markdown_and_mentions() -> None:
    assert escape("**bold** _it_ `code` ~~s~~ |spoiler|") == r"\*\*bold\*\* \_it\_ \`code\` \~\~s\~\~ \|spoiler\|"
    assert "@everyone" not in escape("@everyone hi") and "@here" not in escape("@HERE")
    assert "<@1>" not in escape("<@1>") and "<#2>" not in escape("<#2>")
    assert escape("two\nlines") == "two lines"
    assert len(escape("x" * 500)) == 100


@given(st.text(max_size=300))
def test_escaped_text_never_contains_an_unescaped_mention(text: str) -> None:
    out = escape(text)
    assert "<@" not in out and "<#" not in out and "<&" not in out
    assert "@everyone" not in out.lower() and "@here" not in out.lower()
    assert "\n" not in out


def test_numbers_bars_and_medals() -> None:
    assert number(1234567) == "1,234,567"
    assert progress_bar(0, 49) == "▱" * 10
    assert progress_bar(5, 49) == "▰" + "▱" * 9
    assert progress_bar(49, 49) == "▰" * 10
    assert progress_bar(3, 0) == "▰" * 10  # no reachable next level
    assert [rank_label(r) for r in (1, 2, 3, 4)] == ["🥇", "🥈", "🥉", "#4"]


def test_ties_share_a_rank_and_the_next_rank_counts_everyone_higher() -> None:
    rows = rank_rows([(1, "a", 50, 3), (2, "b", 50, 3), (3, "c", 40, 2), (4, "d", 10, 1), (5, "e", 10, 1)])
    assert [r.rank for r in rows] == [1, 1, 3, 4, 4]


@given(st.lists(st.integers(min_value=1, max_value=20), max_size=30))
def test_rank_is_one_plus_the_number_strictly_higher(values: list[int]) -> None:
    ordered = sorted(values, reverse=True)
    rows = rank_rows([(i, "x", v, 1) for i, v in enumerate(ordered)])
    for row in rows:
        assert row.rank == 1 + sum(1 for v in ordered if v > row.value)


def _profile(**changes: object) -> Profile:
    base: dict[str, object] = {
        "user_id": 1,
        "display_name": "Ada *Lovelace*",
        "avatar_hash": None,
        "xp": 200,
        "level": 4,
        "gold": 12_345,
        "lifetime_stars": 1_500,
        "github_username": None,
        "rank": 2,
        "ranked": 1_000,
        "season": SeasonLine(7, "Spring", NOW, 12, 150, 1_200, 3, 4, 75),
        "badge_count": 2,
        "recent_badges": (
            Badge(1, "Night Owl", "🟣", NOW, masked=True),
            Badge(2, "First _Steps_", None, NOW, masked=False),
        ),
    }
    base.update(changes)
    return Profile(**base)  # type: ignore[arg-type]


def _fields(embed: object) -> dict[str, str]:
    return {f.name: f.value for f in embed.fields}  # type: ignore[attr-defined]


def test_profile_embed_fields() -> None:
    embed = profile_embed(
        _profile(), curve=curve_for(100, 1.25), xp_name="XP", gold_name="Gold", stars_name="Stars", avatar_url=None
    )
    assert embed.title == r"Ada \*Lovelace\*'s profile"
    got = _fields(embed)
    assert got["Level"] == "4"
    assert got["XP"] == "200 · 5/49 to level 5\n▰▱▱▱▱▱▱▱▱▱"
    assert got["Gold"] == "12,345"
    assert got["Rank"] == "#2 of 1,000"
    assert got["Stars"] == "Season 12 · Lifetime 1,500"
    assert got["Season"] == "Messages 1,200 · Reactions given 3 · received 4 · Voice minutes 75"
    assert got["Achievements (2)"] == f"{SECRET}\nFirst \\_Steps\\_"
    assert "GitHub" not in got
    assert embed.footer is not None and embed.footer.text == "Spring · ends 2026-12-03"


def test_profile_embed_without_season_rank_or_next_level() -> None:
    embed = profile_embed(
        _profile(season=None, rank=None, recent_badges=(), badge_count=0, github_username="octo", xp=0, level=1),
        curve=curve_for(100, 1.25),
        xp_name="Sparks",
        gold_name="Coins",
        stars_name="Kudos",
        avatar_url="https://cdn.example/a.png",
    )
    got = _fields(embed)
    assert got["Rank"] == "Unranked"
    assert got["Season"] == "No active season"
    assert got["Kudos"] == "Season 0 · Lifetime 1,500"
    assert got["Sparks"].startswith("0 · 0/125 to level 2")
    assert got["GitHub"] == "https://github.com/octo"
    assert embed.footer is None
    assert embed.thumbnail is not None


def test_leaderboard_embed() -> None:
    board = Board("xp", "season", "Spring", (BoardRow(1, 5, "A", 1_000, 9), BoardRow(2, 6, "B_", 900, 8)), None)
    embed = leaderboard_embed(board, currency_name="XP")
    assert embed.title == "Leaderboard — XP (Spring)"
    assert embed.description == "🥇 **A** — 1,000 (Lv. 9)\n🥈 **B\\_** — 900 (Lv. 8)"
    assert embed.footer is not None and embed.footer.text == "Unranked"


def test_github_username_rules() -> None:
    assert github_problem("octo-cat") is None and github_problem("a") is None and github_problem("a" * 39) is None
    for bad in ("", "a" * 40, "-x", "x-", "a--b", "a_b", "a b"):
        assert github_problem(bad) is not None, bad


def test_season_input_rules() -> None:
    assert name_problem("Spring") is None and name_problem("  ") is not None and name_problem("x" * 101) is not None
    assert days_problem(1) is None and days_problem(730) is None
    assert days_problem(0) is not None and days_problem(731) is not None


def test_template_problems_are_reported_all_at_once() -> None:
    new = NewTemplate(
        name="",
        trigger_type="stat_threshold",
        trigger_config={"stat": "bogus"},
        xp_reward=-1,
        max_earners=0,
        category_id=99,
        rarity_id=5,
    )
    problems = template_problems(new, category_ids={1}, rarity_ids={5})
    assert [field for field, _ in problems] == [
        "name",
        "trigger_config.stat",
        "trigger_config.value",
        "xp_reward",
        "max_earners",
        "category",
    ]
    ok = NewTemplate(name="Chatty", trigger_type="xp_milestone", trigger_config={"value": 10}, rarity_id=5)
    assert template_problems(ok, category_ids=(), rarity_ids={5}) == []
