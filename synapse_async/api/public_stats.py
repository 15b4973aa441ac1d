"""The public guild statistics of SPEC §19: leaderboard, seasons, activity, member profiles, achievements.

What the public may see is decided here and nowhere else: members who left are excluded everywhere (also from
earn rates and earner counts); journal items expose only kind, amounts and time (never `details`, counterparts,
channels or zero-reward rows, nor awards, imports or revokes); hidden achievements are "Secret achievement"
without id, description, category, series, criteria or rewards (in activity: without amounts), and never appear
on a public profile. A member whose `public_profile` preference is off (§17.2) is "Anonymous member" without id
or avatar in every list (keeping their rank) and has no profile (404). Ranks are `services.ranks` (§17.1). Every
read goes through `public_read` (the public pool and gate, §19) and is one statement on an indexed path; page
totals are shared by all pages of a list and deep activity pages continue from where an earlier page ended
(`api/flight.py`).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, Literal

from pydantic import Field
from sqlalchemy import TextClause, text

from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.public import SeasonRef, public_driver, public_guild, public_read, public_reply, season_ref
from synapse_async.api.schema import (
    GuildPath,
    Items,
    NoParams,
    Page,
    PageQuery,
    ResponseModel,
    Snowflake,
    StrictModel,
    UtcTime,
)
from synapse_async.domain.vocabulary import REWARD_KINDS
from synapse_async.rewards.config import GuildConfig
from synapse_async.rewards.leveling import curve_for
from synapse_async.services import ranks

api = Api()
_TAG: Final = "public"
SECRET_NAME: Final = "Secret achievement"
ANONYMOUS_NAME: Final = "Anonymous member"
# Whether the member of row `m` shows on public pages (SPEC §17.2 `public_profile`; no preference row = public).
# A scalar subquery in the select list: PostgreSQL evaluates it only for the rows that survive ORDER BY … LIMIT.
_VISIBLE: Final = (
    "coalesce((SELECT mp.public_profile FROM member_preferences mp"
    " WHERE mp.guild_id = m.guild_id AND mp.user_id = m.user_id), true) AS visible"
)
# The members of a page of ranked rows who keep their profile private (`services.ranks` knows nothing of pages).
_PRIVATE = text(
    "SELECT user_id FROM member_preferences"
    " WHERE guild_id = :g AND user_id = ANY(CAST(:ids AS bigint[])) AND NOT public_profile"
)
ActivityType = Literal["message", "reaction_given", "reaction_received", "thread_create", "voice_tick"]
assert set(ActivityType.__args__) == set(REWARD_KINDS), "public activity kinds are the reward kinds"  # type: ignore[attr-defined]


def avatar_url(cdn: str, user_id: int, avatar_hash: str | None) -> str:
    """SPEC §19: the CDN avatar (`.gif` when animated) or the default `embed/avatars/{(id >> 22) % 6}.png`."""
    if avatar_hash:
        ext = "gif" if avatar_hash.startswith("a_") else "png"
        return f"{cdn}/avatars/{user_id}/{avatar_hash}.{ext}"
    return f"{cdn}/embed/avatars/{(user_id >> 22) % 6}.png"


def earn_pct(earners: int, members_with_xp: int) -> float:
    """Earners ÷ members with XP > 0 × 100, rounded half up to one decimal; 0.0 when nobody has XP."""
    if members_with_xp <= 0:
        return 0.0
    pct = Decimal(earners) * 100 / Decimal(members_with_xp)
    return float(pct.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _cdn(call: Call[Any, Any, Any]) -> str:
    return call.platform.config.discord_cdn_url


class PublicMember(ResponseModel):
    """Who a public row is about: the member, or "Anonymous member" without id or avatar (`public_profile` off)."""

    user_id: Snowflake | None
    display_name: str
    avatar_url: str | None


def public_member_fields(cdn: str, row: Any, *, visible: bool | None = None) -> dict[str, Any]:
    """`user_id`, `display_name`, `avatar_url` of a row (masked when not public): `visible` as given, else the
    row's own `visible` column (selected with `_VISIBLE`)."""
    if not (row.visible if visible is None else visible):
        return {"user_id": None, "display_name": ANONYMOUS_NAME, "avatar_url": None}
    return {
        "user_id": row.user_id,
        "display_name": row.display_name,
        "avatar_url": avatar_url(cdn, row.user_id, row.avatar_hash),
    }


# --------------------------------------------------------------------------------------------------- leaderboard


class LeaderboardQuery(PageQuery):
    by: Literal["xp", "stars", "gold"] = "xp"
    season: str = Field(
        "current", pattern=r"^(current|lifetime|[0-9]{1,18})$", description="current, lifetime or an id"
    )
    user_id: Snowflake | None = Field(None, description="Also answer this member's own row as `member`")


class LeaderboardItem(PublicMember):
    rank: int
    value: int
    level: int
    xp_into_level: int
    xp_for_next_level: int


class Leaderboard(Page[LeaderboardItem]):
    season: SeasonRef | None
    member: LeaderboardItem | None = None


_SEASON = text("SELECT season_id, name, starts_at, ends_at FROM seasons WHERE guild_id = :g AND season_id = :s")


async def _season_for(call: Call[GuildPath, LeaderboardQuery, None], guild: GuildConfig) -> SeasonRef | None:
    choice = call.query.season
    if choice == "lifetime":
        return None
    if choice == "current":
        return season_ref(guild)
    async with public_read(call) as conn:
        row = (await conn.execute(_SEASON, {"g": guild.guild_id, "s": int(choice)})).first()
    if row is None:
        raise ApiError.not_found("Unknown season.")
    return SeasonRef(id=str(row.season_id), name=row.name, starts_at=row.starts_at, ends_at=row.ends_at)


@api.route(
    "GET", "/api/guilds/{guild_id}/leaderboard", summary="Leaderboard by XP, stars or gold", tag=_TAG,
    access=Access.PUBLIC, path_model=GuildPath, guard=public_guild, query=LeaderboardQuery, response=Leaderboard,
)  # fmt: skip
async def public_leaderboard(call: Call[GuildPath, LeaderboardQuery, None]) -> Reply:
    """Present members with a non-zero value, highest first (ties by id), ranked by §17.1 (`services.ranks`):
    a tie shares one rank, also across pages; `season` = current, lifetime or an id. With `user_id`, that
    member's own row (same rank rule) is answered as `member`: null when not on this board or not public."""
    guild = public_guild(call)
    q = call.query
    season = await _season_for(call, guild)
    board = ranks.RankBoard(guild.guild_id, q.by, int(season.id) if season else None)

    async def count() -> int:
        async with public_read(call) as conn:
            return await ranks.ranked_count(conn, board)

    own: ranks.RankedRow | None = None
    async with public_read(call) as conn:
        rows = await ranks.top(conn, board, limit=q.page_size, offset=q.offset)
        if q.user_id is not None:
            own = await ranks.row_of(conn, board, q.user_id)
        shown = rows + ([own] if own is not None else [])
        ids = [r.user_id for r in shown]
        private = {int(u) for u in (await conn.execute(_PRIVATE, {"g": guild.guild_id, "ids": ids})).scalars()}
    total = await call.platform.public_totals.get(("leaderboard", board), count)
    cdn = _cdn(call)

    def item(r: ranks.RankedRow) -> LeaderboardItem:
        _, into, span = guild.curve.progress(r.xp)
        fields = public_member_fields(cdn, r, visible=r.user_id not in private)
        return LeaderboardItem(
            rank=r.rank, **fields, value=r.value, level=r.level, xp_into_level=into, xp_for_next_level=span
        )

    member = item(own) if own is not None and own.user_id not in private else None
    board_page = Leaderboard(
        items=[item(r) for r in rows], page=q.page, page_size=q.page_size, total=total, season=season, member=member
    )
    return public_reply(board_page)


# --------------------------------------------------------------------------------------------------- seasons


class SeasonItem(ResponseModel):
    id: str
    name: str
    status: str
    starts_at: UtcTime
    ends_at: UtcTime


_SEASONS = text(
    "SELECT season_id, name, status, starts_at, ends_at FROM seasons WHERE guild_id = :g "
    "ORDER BY starts_at DESC, season_id DESC"
)


@api.route(
    "GET", "/api/guilds/{guild_id}/seasons", summary="Seasons, newest first", tag=_TAG, access=Access.PUBLIC,
    path_model=GuildPath, guard=public_guild, response=Items[SeasonItem],
)  # fmt: skip
async def public_seasons(call: Call[GuildPath, NoParams, None]) -> Reply:
    """Every season of the guild with its status."""
    guild = public_guild(call)
    async with public_read(call) as conn:
        rows = (await conn.execute(_SEASONS, {"g": guild.guild_id})).all()
    items = [
        SeasonItem(id=str(r.season_id), name=r.name, status=r.status, starts_at=r.starts_at, ends_at=r.ends_at)
        for r in rows
    ]
    return public_reply(Items[SeasonItem](items=items))


# --------------------------------------------------------------------------------------------------- activity


class ActivityQuery(PageQuery):
    days: int = Field(7, ge=1, le=90)
    event_type: ActivityType | Literal["level_up", "achievement"] | None = None


class ActivityItem(PublicMember):
    id: int
    event_type: str
    xp: int | None = Field(description="null for a secret (hidden) achievement")
    stars: int | None = Field(description="null for a secret (hidden) achievement")
    occurred_at: UtcTime
    level: int | None = None
    name: str | None = None


# The public journal view: paid reward rows, level changes to a new peak, achievements. The CASE columns are the
# only facts that leave: no details, channel, counterpart or reference.
_ACTIVITY_FROM = f"""
  FROM reward_journal j
  JOIN members m ON m.guild_id = j.guild_id AND m.user_id = j.user_id AND m.left_at IS NULL
  LEFT JOIN achievement_templates t
         ON j.event_type = 'achievement' AND t.guild_id = j.guild_id
        AND t.id = CASE WHEN jsonb_typeof(j.details -> 'template_id') = 'number'
                        THEN (j.details ->> 'template_id')::bigint END
 WHERE j.guild_id = :g AND j.occurred_at > now() - make_interval(days => :days)
   AND (
        (j.event_type IN ({", ".join(f"'{k}'" for k in REWARD_KINDS)})
         AND j.zero_reason IS NULL AND (j.xp_delta > 0 OR j.star_delta > 0))
     OR (j.event_type = 'level_change'
         AND jsonb_typeof(j.details -> 'to') = 'number' AND jsonb_typeof(j.details -> 'from') = 'number'
         AND (j.details ->> 'to')::int > (j.details ->> 'from')::int
         AND NOT EXISTS (
             SELECT 1 FROM reward_journal p
              WHERE p.guild_id = j.guild_id AND p.user_id = j.user_id AND p.event_type = 'level_change'
                AND p.id < j.id AND jsonb_typeof(p.details -> 'to') = 'number'
                AND (p.details ->> 'to')::int >= (j.details ->> 'to')::int))
     OR (j.event_type = 'achievement' AND t.id IS NOT NULL)
   )
"""
_PUBLIC_TYPE = "CASE j.event_type WHEN 'level_change' THEN 'level_up' ELSE j.event_type END"


def _activity_page(*, keyset: bool) -> TextClause:
    """One page of the activity list; with `keyset`, the page continues after the row (:after_at, :after_id)."""
    after = "AND (j.occurred_at, j.id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS bigint))" if keyset else ""
    return text(
        f"""
        SELECT j.id, j.user_id, m.display_name, m.avatar_hash, {_VISIBLE}, {_PUBLIC_TYPE} AS event_type,
               greatest(j.xp_delta, 0) AS xp, greatest(j.star_delta, 0) AS stars, j.occurred_at,
               CASE WHEN j.event_type = 'level_change' THEN (j.details ->> 'to')::int END AS level,
               CASE WHEN j.event_type = 'achievement' THEN
                    CASE WHEN t.is_hidden THEN '{SECRET_NAME}' ELSE t.name END END AS name,
               coalesce(t.is_hidden, false) AS secret
        {_ACTIVITY_FROM}
           AND (CAST(:event_type AS text) IS NULL OR {_PUBLIC_TYPE} = :event_type) {after}
         ORDER BY j.occurred_at DESC, j.id DESC LIMIT :limit OFFSET :offset
        """
    )


_ACTIVITY_PAGE = _activity_page(keyset=False)
_ACTIVITY_AFTER = _activity_page(keyset=True)
_ACTIVITY_COUNT = text(
    f"SELECT count(*) {_ACTIVITY_FROM} AND (CAST(:event_type AS text) IS NULL OR {_PUBLIC_TYPE} = :event_type)"
)


@api.route(
    "GET", "/api/guilds/{guild_id}/activity", summary="Recent public activity", tag=_TAG, access=Access.PUBLIC,
    path_model=GuildPath, guard=public_guild, query=ActivityQuery, response=Page[ActivityItem],
)  # fmt: skip
async def public_activity(call: Call[GuildPath, ActivityQuery, None]) -> Reply:
    """Paid reward items, level-ups to a new peak and achievements of the last `days` days, newest first."""
    guild = public_guild(call)
    q = call.query
    params: dict[str, object] = {
        "g": guild.guild_id, "days": q.days, "event_type": q.event_type, "limit": q.page_size, "offset": q.offset,
    }  # fmt: skip

    async def count() -> int:
        async with public_read(call) as conn:
            return int((await conn.execute(_ACTIVITY_COUNT, params)).scalar_one())

    listing = ("activity", guild.guild_id, q.days, q.event_type)
    anchors = call.platform.public_anchors
    anchor = anchors.nearest(listing, q.offset)
    page_sql = _ACTIVITY_PAGE
    if anchor is not None:  # keyset: continue after a row a page ending at or before this offset returned
        end, (after_at, after_id) = anchor
        page_sql = _ACTIVITY_AFTER
        params |= {"offset": q.offset - end, "after_at": after_at, "after_id": after_id}
    async with public_read(call) as conn:
        rows = (await conn.execute(page_sql, params)).all()
    if rows:
        anchors.record(listing, q.offset + len(rows), (rows[-1].occurred_at, int(rows[-1].id)))
    total = await call.platform.public_totals.get(listing, count)
    cdn = _cdn(call)
    items = [
        ActivityItem(
            id=r.id,
            **public_member_fields(cdn, r),
            event_type=r.event_type,
            # A secret achievement reveals nothing, not even its reward (§19): its amounts would identify it.
            xp=None if r.secret else r.xp,
            stars=None if r.secret else r.stars,
            occurred_at=r.occurred_at,
            level=r.level,
            name=r.name,
        )
        for r in rows
    ]
    return public_reply(Page[ActivityItem](items=items, page=q.page, page_size=q.page_size, total=total))


class DailyQuery(StrictModel):
    days: int = Field(7, ge=1, le=90)
    user_id: Snowflake | None = Field(None, description="One member's days only (404 unless public)")


class DailyCount(ResponseModel):
    date: date
    event_type: str
    count: int
    xp: int


_DAILY = text(
    f"""
    SELECT (j.occurred_at AT TIME ZONE 'UTC')::date AS day, j.event_type, count(*) AS n,
           coalesce(sum(greatest(j.xp_delta, 0)), 0)::bigint AS xp
      FROM reward_journal j
      JOIN members m ON m.guild_id = j.guild_id AND m.user_id = j.user_id AND m.left_at IS NULL
     WHERE j.guild_id = :g AND (CAST(:u AS bigint) IS NULL OR j.user_id = :u)
       AND j.occurred_at >= CAST((now() AT TIME ZONE 'UTC')::date - (:days - 1) AS timestamp) AT TIME ZONE 'UTC'
       AND j.event_type IN ({", ".join(f"'{k}'" for k in REWARD_KINDS)})
       AND j.zero_reason IS NULL AND (j.xp_delta > 0 OR j.star_delta > 0)
     GROUP BY 1, 2 ORDER BY 1, 2
    """
)
_IS_PUBLIC = text(f"SELECT {_VISIBLE} FROM members m WHERE m.guild_id = :g AND m.user_id = :u AND m.left_at IS NULL")


@api.route(
    "GET", "/api/guilds/{guild_id}/activity/daily", summary="Paid items per UTC day and kind", tag=_TAG,
    access=Access.PUBLIC, path_model=GuildPath, guard=public_guild, query=DailyQuery, response=Items[DailyCount],
)  # fmt: skip
async def public_activity_daily(call: Call[GuildPath, DailyQuery, None]) -> Reply:
    """Counted from the journal (paid reward items only, with their XP), today included, oldest day first;
    `user_id` narrows it to one public member (404 for an unknown, departed or private one)."""
    guild = public_guild(call)
    params = {"g": guild.guild_id, "u": call.query.user_id, "days": call.query.days}
    async with public_read(call) as conn:
        if call.query.user_id is not None and not (await conn.execute(_IS_PUBLIC, params)).scalar():
            raise ApiError.not_found("Unknown member.")
        rows = (await conn.execute(_DAILY, params)).all()
    items = [DailyCount(date=r.day, event_type=r.event_type, count=r.n, xp=r.xp) for r in rows]
    return public_reply(Items[DailyCount](items=items))


# --------------------------------------------------------------------------------------------------- profile


class MemberPath(StrictModel):
    guild_id: Snowflake
    user_id: Snowflake


class Stars(ResponseModel):
    season: int
    lifetime: int


class Rank(ResponseModel):
    xp: int | None = Field(description="§17.1 rank by XP; null for a member with 0 XP (not ranked)")
    of: int = Field(description="members still in the guild with XP > 0")


class EarnedBadge(ResponseModel):
    id: int
    name: str
    rarity: str | None
    earned_at: UtcTime


class Profile(ResponseModel):
    user_id: Snowflake
    display_name: str
    avatar_url: str
    level: int
    xp: int
    xp_into_level: int
    xp_for_next_level: int
    gold: int
    stars: Stars
    rank: Rank
    achievements: list[EarnedBadge]


# One statement (one snapshot, one round trip): the member, their season stars, the rank read from the count tree
# (`services.ranks`, no count of rows) and their non-hidden achievements, newest first, as parallel arrays.
_PROFILE: Final = f"""
    SELECT m.user_id, m.display_name, m.avatar_hash, m.xp, m.gold, m.lifetime_stars, {_VISIBLE},
           coalesce((SELECT ss.stars FROM season_stats ss WHERE ss.season_id = $3 AND ss.user_id = m.user_id), 0)
               AS season_stars,
           {ranks.xp_higher_sql("m.guild_id", "m.xp")} AS xp_higher, {ranks.xp_ranked_sql("m.guild_id")} AS xp_ranked,
           b.ids, b.names, b.rarities, b.earned
      FROM members m
     CROSS JOIN LATERAL (
           SELECT array_agg(t.id ORDER BY ma.earned_at DESC, t.id) AS ids,
                  array_agg(t.name ORDER BY ma.earned_at DESC, t.id) AS names,
                  array_agg(r.name ORDER BY ma.earned_at DESC, t.id) AS rarities,
                  array_agg(ma.earned_at ORDER BY ma.earned_at DESC, t.id) AS earned
             FROM member_achievements ma
             JOIN achievement_templates t ON t.guild_id = ma.guild_id AND t.id = ma.template_id
             LEFT JOIN achievement_rarities r ON r.guild_id = t.guild_id AND r.id = t.rarity_id
            WHERE ma.guild_id = m.guild_id AND ma.user_id = m.user_id AND NOT t.is_hidden) AS b
     WHERE m.guild_id = $1 AND m.user_id = $2 AND m.left_at IS NULL
    """


@api.route(
    "GET", "/api/guilds/{guild_id}/members/{user_id}", summary="A member's public profile", tag=_TAG,
    access=Access.PUBLIC, path_model=MemberPath, guard=public_guild, response=Profile,
)  # fmt: skip
async def public_member(call: Call[MemberPath, NoParams, None]) -> Reply:
    """Level, progress, gold, stars, rank by XP (ties share a rank) and non-hidden
    achievements; 404 for unknown members, members who left and members whose profile is not public."""
    guild = public_guild(call)
    season = guild.active_season
    async with public_driver(call) as conn:
        row = await conn.fetchrow(_PROFILE, guild.guild_id, call.path.user_id, season.season_id if season else None)
    if row is None or not row["visible"]:
        raise ApiError.not_found("Unknown member.")
    rank, members = ranks.rank_from_higher(int(row["xp_higher"]), int(row["xp"])), int(row["xp_ranked"])
    badges = zip(row["ids"] or (), row["names"] or (), row["rarities"] or (), row["earned"] or (), strict=True)
    settings = guild.settings
    curve = curve_for(settings.int("leveling.level_base"), settings.float("leveling.level_factor"))
    level, into, span = curve.progress(int(row["xp"]))
    return public_reply(
        Profile(
            user_id=row["user_id"],
            display_name=row["display_name"],
            avatar_url=avatar_url(_cdn(call), row["user_id"], row["avatar_hash"]),
            level=level,
            xp=row["xp"],
            xp_into_level=into,
            xp_for_next_level=span,
            gold=row["gold"],
            stars=Stars(season=row["season_stars"], lifetime=row["lifetime_stars"]),
            rank=Rank(xp=rank, of=members),
            achievements=[EarnedBadge(id=i, name=n, rarity=r, earned_at=e) for i, n, r, e in badges],
        )
    )


# --------------------------------------------------------------------------------------------------- achievements


class RarityRef(ResponseModel):
    name: str
    color: str
    emoji: str | None


class SeriesRef(ResponseModel):
    id: int
    name: str
    order: int | None


class Achievement(ResponseModel):
    id: int | None = Field(description="null for a hidden achievement (§19: nothing identifies it)")
    name: str
    description: str | None
    category: str | None
    rarity: RarityRef | None
    series: SeriesRef | None
    xp_reward: int | None
    gold_reward: int | None
    badge_image_url: str | None
    earned_count: int
    earn_pct: float
    hidden: bool


_TEMPLATES_FROM = """
  FROM achievement_templates t
  LEFT JOIN achievement_categories c ON c.guild_id = t.guild_id AND c.id = t.category_id
  LEFT JOIN achievement_rarities r ON r.guild_id = t.guild_id AND r.id = t.rarity_id
  LEFT JOIN achievement_series s ON s.guild_id = t.guild_id AND s.id = t.series_id
 WHERE t.guild_id = :g AND t.active
"""
_TEMPLATES = text(
    f"""
    SELECT t.id, t.name, t.description, t.xp_reward, t.gold_reward, t.badge_image_url,
           t.is_hidden, t.series_order, c.name AS category, r.name AS rarity, r.color, r.emoji,
           s.id AS series_id, s.name AS series_name
    {_TEMPLATES_FROM}
     ORDER BY c.sort_order NULLS LAST, t.series_id NULLS LAST, t.series_order NULLS LAST, t.id
     LIMIT :limit OFFSET :offset
    """
)
_TEMPLATES_COUNT = text(f"SELECT count(*) {_TEMPLATES_FROM}")
_WITH_XP = text("SELECT count(*) FROM members WHERE guild_id = :g AND left_at IS NULL AND xp > 0")
# Earners still in the guild, per template of the page (the stored `earned_count` also counts members who left:
# issue 22 saw 133.3 % and 166.7 %). `with_xp` earners are the numerator of `earn_pct`, so it never exceeds 100.
_EARNERS = text(
    """
    SELECT ma.template_id, count(*) AS earned, count(*) FILTER (WHERE m.xp > 0) AS with_xp
      FROM member_achievements ma
      JOIN members m ON m.guild_id = ma.guild_id AND m.user_id = ma.user_id AND m.left_at IS NULL
     WHERE ma.guild_id = :g AND ma.template_id = ANY(CAST(:ids AS bigint[]))
     GROUP BY ma.template_id
    """
)


def _achievement(r: Any, earners: tuple[int, int], members_with_xp: int) -> Achievement:
    """A template as the public sees it; a hidden one keeps only its rarity and how often it was earned."""
    hidden = bool(r.is_hidden)
    series = None if r.series_id is None else SeriesRef(id=r.series_id, name=r.series_name, order=r.series_order)
    return Achievement(
        id=None if hidden else r.id,
        name=SECRET_NAME if hidden else r.name,
        description=None if hidden else r.description,
        category=None if hidden else r.category,
        rarity=None if r.rarity is None else RarityRef(name=r.rarity, color=r.color, emoji=r.emoji),
        series=None if hidden else series,
        xp_reward=None if hidden else r.xp_reward,
        gold_reward=None if hidden else r.gold_reward,
        badge_image_url=None if hidden else r.badge_image_url,
        earned_count=earners[0],
        earn_pct=earn_pct(earners[1], members_with_xp),
        hidden=hidden,
    )


@api.route(
    "GET", "/api/guilds/{guild_id}/achievements", summary="Active achievements", tag=_TAG, access=Access.PUBLIC,
    path_model=GuildPath, guard=public_guild, query=PageQuery, response=Page[Achievement],
)  # fmt: skip
async def public_achievements(call: Call[GuildPath, PageQuery, None]) -> Reply:
    """Active templates with their earn rate; hidden ones as "Secret achievement" without details or rewards."""
    guild = public_guild(call)
    q = call.query
    params = {"g": guild.guild_id, "limit": q.page_size, "offset": q.offset}
    async with public_read(call) as conn:
        rows = (await conn.execute(_TEMPLATES, params)).all()
        total = (await conn.execute(_TEMPLATES_COUNT, params)).scalar_one()
        with_xp = int((await conn.execute(_WITH_XP, params)).scalar_one())
        ids = [int(r.id) for r in rows]
        earned = {
            e.template_id: (int(e.earned), int(e.with_xp)) for e in await conn.execute(_EARNERS, params | {"ids": ids})
        }
    items = [_achievement(r, earned.get(r.id, (0, 0)), with_xp) for r in rows]
    return public_reply(Page[Achievement](items=items, page=q.page, page_size=q.page_size, total=int(total)))


class RecentQuery(StrictModel):
    limit: int = Field(10, ge=1, le=50)


class RecentBadge(PublicMember):
    achievement_id: int | None = Field(description="null for a hidden achievement")
    name: str
    rarity: str | None
    color: str | None
    earned_at: UtcTime


_RECENT = text(
    f"""
    SELECT ma.user_id AS user_id, m.display_name, m.avatar_hash, {_VISIBLE}, t.id, t.is_hidden,
           CASE WHEN t.is_hidden THEN '{SECRET_NAME}' ELSE t.name END AS name,
           r.name AS rarity, r.color, ma.earned_at
      FROM member_achievements ma
      JOIN members m ON m.guild_id = ma.guild_id AND m.user_id = ma.user_id AND m.left_at IS NULL
      JOIN achievement_templates t ON t.guild_id = ma.guild_id AND t.id = ma.template_id
      LEFT JOIN achievement_rarities r ON r.guild_id = t.guild_id AND r.id = t.rarity_id
     WHERE ma.guild_id = :g
     ORDER BY ma.earned_at DESC, ma.user_id, t.id LIMIT :limit
    """
)


@api.route(
    "GET", "/api/guilds/{guild_id}/achievements/recent", summary="Recently earned achievements", tag=_TAG,
    access=Access.PUBLIC, path_model=GuildPath, guard=public_guild, query=RecentQuery, response=Items[RecentBadge],
)  # fmt: skip
async def public_recent_achievements(call: Call[GuildPath, RecentQuery, None]) -> Reply:
    """The latest `limit` earned badges of present members, hidden ones masked."""
    guild = public_guild(call)
    async with public_read(call) as conn:
        rows = (await conn.execute(_RECENT, {"g": guild.guild_id, "limit": call.query.limit})).all()
    cdn = _cdn(call)
    items = [
        RecentBadge(
            **public_member_fields(cdn, r),
            achievement_id=None if r.is_hidden else r.id,
            name=r.name,
            rarity=r.rarity,
            color=r.color,
            earned_at=r.earned_at,
        )
        for r in rows
    ]
    return public_reply(Items[RecentBadge](items=items))
