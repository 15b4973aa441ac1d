"""The public guild statistics of SPEC §19: leaderboard, seasons, activity, member profiles, achievements.

What the public may see is decided here and nowhere else: members who left are excluded everywhere; journal
items expose only kind, amounts and time (never `details`, counterparts, channels or zero-reward rows, nor
awards, imports or revokes); hidden achievements are "Secret achievement" without description, criteria or
rewards, and never appear on a public profile. Every query is one statement on an indexed path.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, Literal

from pydantic import Field
from sqlalchemy import text

from synapse_async.api.contract import Access, Api, Call, Reply
from synapse_async.api.errors import ApiError
from synapse_async.api.public import SeasonRef, public_guild, public_reply, season_ref
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
ActivityType = Literal["message", "reaction_given", "reaction_received", "thread_create", "voice_tick"]
assert set(ActivityType.__args__) == set(REWARD_KINDS), "public activity kinds are the reward kinds"  # type: ignore[attr-defined]


def avatar_url(cdn: str, user_id: int, avatar_hash: str | None) -> str:
    """SPEC §19: the CDN avatar (`.gif` when animated) or the default `embed/avatars/{(id >> 22) % 6}.png`."""
    if avatar_hash:
        ext = "gif" if avatar_hash.startswith("a_") else "png"
        return f"{cdn}/avatars/{user_id}/{avatar_hash}.{ext}"
    return f"{cdn}/embed/avatars/{(user_id >> 22) % 6}.png"


class PublicMember(ResponseModel):
    """Who a public row is about: the member, or "Anonymous member" without id or avatar (`public_profile` off)."""

    user_id: Snowflake | None
    display_name: str
    avatar_url: str | None


def public_member_fields(cdn: str, row: Any) -> dict[str, Any]:
    """`user_id`, `display_name`, `avatar_url` of a row selected with `_VISIBLE` (masked when not public)."""
    if not row.visible:
        return {"user_id": None, "display_name": ANONYMOUS_NAME, "avatar_url": None}
    return {
        "user_id": row.user_id,
        "display_name": row.display_name,
        "avatar_url": avatar_url(cdn, row.user_id, row.avatar_hash),
    }


def earn_pct(earners: int, members_with_xp: int) -> float:
    """Earners ÷ members with XP > 0 × 100, rounded half up to one decimal; 0.0 when nobody has XP."""
    if members_with_xp <= 0:
        return 0.0
    pct = Decimal(earners) * 100 / Decimal(members_with_xp)
    return float(pct.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _cdn(call: Call[Any, Any, Any]) -> str:
    return call.platform.config.discord_cdn_url


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
_LIFETIME_COLUMNS: Final = {"xp": "m.xp", "stars": "m.lifetime_stars", "gold": "m.gold"}
_SEASON_COLUMNS: Final = {"xp": "ss.xp", "stars": "ss.stars", "gold": "ss.gold_earned"}


async def _season_for(call: Call[GuildPath, LeaderboardQuery, None], guild: GuildConfig) -> SeasonRef | None:
    choice = call.query.season
    if choice == "lifetime":
        return None
    if choice == "current":
        return season_ref(guild)
    async with call.platform.read() as conn:
        row = (await conn.execute(_SEASON, {"g": guild.guild_id, "s": int(choice)})).first()
    if row is None:
        raise ApiError.not_found("Unknown season.")
    return SeasonRef(id=str(row.season_id), name=row.name, starts_at=row.starts_at, ends_at=row.ends_at)


@api.route(
    "GET", "/api/guilds/{guild_id}/leaderboard", summary="Leaderboard by XP, stars or gold", tag=_TAG,
    access=Access.PUBLIC, path_model=GuildPath, guard=public_guild, query=LeaderboardQuery, response=Leaderboard,
)  # fmt: skip
async def public_leaderboard(call: Call[GuildPath, LeaderboardQuery, None]) -> Reply:
    """Present members with a non-zero value, highest first (ties by id); `season` = current, lifetime or an id."""
    guild = public_guild(call)
    q = call.query
    season = await _season_for(call, guild)
    if season is None:
        value = _LIFETIME_COLUMNS[q.by]
        source = "members m"
        where = f"m.guild_id = :g AND m.left_at IS NULL AND {value} > 0"
    else:
        value = _SEASON_COLUMNS[q.by]
        source = "season_stats ss JOIN members m ON m.guild_id = ss.guild_id AND m.user_id = ss.user_id"
        where = f"ss.season_id = :s AND m.guild_id = :g AND m.left_at IS NULL AND {value} > 0"
    # Only the fixed column and source names above are interpolated; every value is bound.
    page_sql = text(
        f"""
        SELECT m.user_id, m.display_name, m.avatar_hash, m.level, m.xp, {value} AS value, {_VISIBLE}
          FROM {source} WHERE {where}
         ORDER BY {value} DESC, m.user_id LIMIT :limit OFFSET :offset
        """
    )
    count_sql = text(f"SELECT count(*) FROM {source} WHERE {where}")
    params = {"g": guild.guild_id, "s": int(season.id) if season else None, "limit": q.page_size, "offset": q.offset}
    member: LeaderboardItem | None = None
    async with call.platform.read() as conn:
        rows = (await conn.execute(page_sql, params)).all()
        total = (await conn.execute(count_sql, params)).scalar_one()
        if q.user_id is not None:
            member = await _own_row(conn, guild, source, where, value, params | {"u": q.user_id}, _cdn(call))
    cdn = _cdn(call)
    progress = [guild.curve.progress(int(r.xp)) for r in rows]
    items = [
        LeaderboardItem(
            rank=q.offset + i + 1,
            **public_member_fields(cdn, r),
            value=r.value,
            level=r.level,
            xp_into_level=into,
            xp_for_next_level=span,
        )
        for i, (r, (_, into, span)) in enumerate(zip(rows, progress, strict=True))
    ]
    board = Leaderboard(items=items, page=q.page, page_size=q.page_size, total=int(total), season=season, member=member)
    return public_reply(board)


async def _own_row(
    conn: Any, guild: GuildConfig, source: str, where: str, value: str, params: dict[str, Any], cdn: str
) -> LeaderboardItem | None:
    """One member's row of this board (the signed-in member's pinned row): rank = 1 + members with a strictly
    higher value (SPEC §17.1); None when they are not on it (value 0, left) or their profile is not public."""
    own = text(
        f"SELECT m.user_id, m.display_name, m.avatar_hash, m.level, m.xp, {value} AS value, {_VISIBLE}"
        f" FROM {source} WHERE {where} AND m.user_id = :u"
    )
    row = (await conn.execute(own, params)).first()
    if row is None or not row.visible:
        return None
    above = text(f"SELECT count(*) FROM {source} WHERE {where} AND {value} > :v")
    higher = (await conn.execute(above, params | {"v": row.value})).scalar_one()
    _, into, span = guild.curve.progress(int(row.xp))
    fields = public_member_fields(cdn, row)
    return LeaderboardItem(
        rank=int(higher) + 1, **fields, value=row.value, level=row.level, xp_into_level=into, xp_for_next_level=span
    )


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
    async with call.platform.read() as conn:
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
    xp: int
    stars: int
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
_ACTIVITY_PAGE = text(
    f"""
    SELECT j.id, j.user_id, m.display_name, m.avatar_hash, {_VISIBLE}, {_PUBLIC_TYPE} AS event_type,
           greatest(j.xp_delta, 0) AS xp, greatest(j.star_delta, 0) AS stars, j.occurred_at,
           CASE WHEN j.event_type = 'level_change' THEN (j.details ->> 'to')::int END AS level,
           CASE WHEN j.event_type = 'achievement' THEN
                CASE WHEN t.is_hidden THEN '{SECRET_NAME}' ELSE t.name END END AS name
    {_ACTIVITY_FROM}
       AND (CAST(:event_type AS text) IS NULL OR {_PUBLIC_TYPE} = :event_type)
     ORDER BY j.occurred_at DESC, j.id DESC LIMIT :limit OFFSET :offset
    """
)
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
    params = {"g": guild.guild_id, "days": q.days, "event_type": q.event_type, "limit": q.page_size, "offset": q.offset}
    async with call.platform.read() as conn:
        rows = (await conn.execute(_ACTIVITY_PAGE, params)).all()
        total = (await conn.execute(_ACTIVITY_COUNT, params)).scalar_one()
    cdn = _cdn(call)
    items = [
        ActivityItem(
            id=r.id,
            **public_member_fields(cdn, r),
            event_type=r.event_type,
            xp=r.xp,
            stars=r.stars,
            occurred_at=r.occurred_at,
            level=r.level,
            name=r.name,
        )
        for r in rows
    ]
    return public_reply(Page[ActivityItem](items=items, page=q.page, page_size=q.page_size, total=int(total)))


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
       AND j.occurred_at >= (now() AT TIME ZONE 'UTC')::date - (:days - 1) * interval '1 day'
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
    async with call.platform.read() as conn:
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
    xp: int
    of: int


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


_PROFILE = text(
    f"""
    SELECT m.user_id, m.display_name, m.avatar_hash, m.xp, m.gold, m.lifetime_stars, {_VISIBLE},
           coalesce((SELECT ss.stars FROM season_stats ss WHERE ss.season_id = :s AND ss.user_id = m.user_id), 0)
               AS season_stars
      FROM members m WHERE m.guild_id = :g AND m.user_id = :u AND m.left_at IS NULL
    """
)
_XP_VALUES = text("SELECT xp FROM members WHERE guild_id = :g AND left_at IS NULL")
_BADGES = text(
    """
    SELECT t.id, t.name, r.name AS rarity, ma.earned_at
      FROM member_achievements ma
      JOIN achievement_templates t ON t.id = ma.template_id
      LEFT JOIN achievement_rarities r ON r.id = t.rarity_id
     WHERE ma.guild_id = :g AND ma.user_id = :u AND NOT t.is_hidden
     ORDER BY ma.earned_at DESC, t.id
    """
)


@api.route(
    "GET", "/api/guilds/{guild_id}/members/{user_id}", summary="A member's public profile", tag=_TAG,
    access=Access.PUBLIC, path_model=MemberPath, guard=public_guild, response=Profile,
)  # fmt: skip
async def public_member(call: Call[MemberPath, NoParams, None]) -> Reply:
    """Level, progress, gold, stars, rank by XP (ties share a rank; at most a few seconds old) and non-hidden
    achievements; 404 for unknown members, members who left and members whose profile is not public."""
    guild = public_guild(call)
    season = guild.active_season
    params = {"g": guild.guild_id, "u": call.path.user_id, "s": season.season_id if season else None}
    async with call.platform.read() as conn:
        row = (await conn.execute(_PROFILE, params)).first()
        if row is None or not row.visible:
            raise ApiError.not_found("Unknown member.")
        badges = (await conn.execute(_BADGES, params)).all()

    async def xp_values() -> list[int]:
        async with call.platform.read() as conn:
            return list((await conn.execute(_XP_VALUES, params)).scalars())

    rank, members = await call.platform.ranks.rank(guild.guild_id, int(row.xp), xp_values)
    settings = guild.settings
    curve = curve_for(settings.int("leveling.level_base"), settings.float("leveling.level_factor"))
    level, into, span = curve.progress(int(row.xp))
    return public_reply(
        Profile(
            user_id=row.user_id,
            display_name=row.display_name,
            avatar_url=avatar_url(_cdn(call), row.user_id, row.avatar_hash),
            level=level,
            xp=row.xp,
            xp_into_level=into,
            xp_for_next_level=span,
            gold=row.gold,
            stars=Stars(season=row.season_stars, lifetime=row.lifetime_stars),
            rank=Rank(xp=rank, of=members),
            achievements=[EarnedBadge(id=b.id, name=b.name, rarity=b.rarity, earned_at=b.earned_at) for b in badges],
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
    id: int
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
  LEFT JOIN achievement_categories c ON c.id = t.category_id
  LEFT JOIN achievement_rarities r ON r.id = t.rarity_id
  LEFT JOIN achievement_series s ON s.id = t.series_id
 WHERE t.guild_id = :g AND t.active
"""
_TEMPLATES = text(
    f"""
    SELECT t.id, t.name, t.description, t.xp_reward, t.gold_reward, t.badge_image_url, t.earned_count,
           t.is_hidden, t.series_order, c.name AS category, r.name AS rarity, r.color, r.emoji,
           s.id AS series_id, s.name AS series_name
    {_TEMPLATES_FROM}
     ORDER BY c.sort_order NULLS LAST, t.series_id NULLS LAST, t.series_order NULLS LAST, t.id
     LIMIT :limit OFFSET :offset
    """
)
_TEMPLATES_COUNT = text(f"SELECT count(*) {_TEMPLATES_FROM}")
_WITH_XP = text("SELECT count(*) FROM members WHERE guild_id = :g AND left_at IS NULL AND xp > 0")


def _achievement(r: Any, members_with_xp: int) -> Achievement:
    hidden = bool(r.is_hidden)
    return Achievement(
        id=r.id,
        name=SECRET_NAME if hidden else r.name,
        description=None if hidden else r.description,
        category=r.category,
        rarity=None if r.rarity is None else RarityRef(name=r.rarity, color=r.color, emoji=r.emoji),
        series=None if r.series_id is None else SeriesRef(id=r.series_id, name=r.series_name, order=r.series_order),
        xp_reward=None if hidden else r.xp_reward,
        gold_reward=None if hidden else r.gold_reward,
        badge_image_url=None if hidden else r.badge_image_url,
        earned_count=r.earned_count,
        earn_pct=earn_pct(r.earned_count, members_with_xp),
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
    async with call.platform.read() as conn:
        rows = (await conn.execute(_TEMPLATES, params)).all()
        total = (await conn.execute(_TEMPLATES_COUNT, params)).scalar_one()
        with_xp = int((await conn.execute(_WITH_XP, params)).scalar_one())
    items = [_achievement(r, with_xp) for r in rows]
    return public_reply(Page[Achievement](items=items, page=q.page, page_size=q.page_size, total=int(total)))


class RecentQuery(StrictModel):
    limit: int = Field(10, ge=1, le=50)


class RecentBadge(PublicMember):
    achievement_id: int
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
      JOIN achievement_templates t ON t.id = ma.template_id
      LEFT JOIN achievement_rarities r ON r.id = t.rarity_id
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
    async with call.platform.read() as conn:
        rows = (await conn.execute(_RECENT, {"g": guild.guild_id, "limit": call.query.limit})).all()
    cdn = _cdn(call)
    items = [
        RecentBadge(
            **public_member_fields(cdn, r),
            achievement_id=r.id,
            name=r.name,
            rarity=r.rarity,
            color=r.color,
            earned_at=r.earned_at,
        )
        for r in rows
    ]
    return public_reply(Items[RecentBadge](items=items))
