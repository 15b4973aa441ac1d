"""The achievement catalogue's writes and admin reads (SPEC §12.1–§12.3, §20): templates, categories, rarities, series.

`template_problems` is the whole validation of a template, pure and exhaustive (every problem at once, as
`(field, problem)` pairs): `/create-achievement` lists them in its reply and the admin API returns them as a 400
`validation_error`. Category, rarity and series must belong to the template's guild: the command pre-checks
against its cache, and every write checks again against the guild's rows read in the writing transaction, so a
reference deleted meanwhile (or another guild's id) can never be linked; the composite foreign keys of migration
0014 make the database refuse another guild's id too. Each write, its audit row (before/after
snapshots) and the NOTIFY of its table commit together; unique clashes are `CatalogueConflict` (409), never a 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from synapse_async.db.engine import Database
from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.db.models import MAX_TEMPLATE_REWARD
from synapse_async.db.notify import notify_config
from synapse_async.rewards.achievements import normalized_trigger_config, validate_trigger
from synapse_async.services.audit import Actor, record

MAX_NAME = 100
MAX_DESCRIPTION = 500
MAX_URL = 500
T = TypeVar("T")


class TemplateRejected(Exception):
    """Nothing was written; `problems` are `(field, problem)` pairs (a taken name is `("name", "already exists")`)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {p}" for f, p in problems))
        self.problems = problems


class CatalogueConflict(Exception):
    """Nothing was written: a unique clash or a state that forbids the change (409 in the API, whose
    `details.reason` is `reason`)."""

    def __init__(self, message: str, reason: str = "clash") -> None:
        super().__init__(message)
        self.reason = reason


class CatalogueNotFound(Exception):
    """The template, category, rarity or series does not exist in this guild (404 in the API)."""


class TemplateNameTaken(TemplateRejected, CatalogueConflict):
    """The name is taken in this guild: a field problem for the command, a conflict for the API."""

    def __init__(self) -> None:
        super().__init__([("name", "already exists")])
        self.reason = "name_taken"


@dataclass(frozen=True, slots=True)
class NewTemplate:
    """A template's writable fields (SPEC §6.4), as given by the admin."""

    name: str
    trigger_type: str
    trigger_config: Mapping[str, object] = field(default_factory=dict)
    description: str | None = None
    category_id: int | None = None
    rarity_id: int | None = None
    series_id: int | None = None
    series_order: int | None = None
    xp_reward: int = 0
    gold_reward: int = 0
    badge_image_url: str | None = None
    announce_channel_id: int | None = None
    is_hidden: bool = False
    max_earners: int | None = None
    active: bool = True


WRITABLE: Final = frozenset(NewTemplate.__dataclass_fields__)


@dataclass(frozen=True, slots=True)
class CreatedTemplate:
    template_id: int
    name: str
    trigger_type: str
    trigger_config: Mapping[str, object]
    xp_reward: int
    gold_reward: int


@dataclass(frozen=True, slots=True)
class GuildRefs:
    """The ids a template of this guild may reference."""

    category_ids: Collection[int] = ()
    rarity_ids: Collection[int] = ()
    series_ids: Collection[int] = ()


def template_problems(
    new: NewTemplate,
    *,
    category_ids: Collection[int],
    rarity_ids: Collection[int],
    series_ids: Collection[int] = (),
) -> list[tuple[str, str]]:
    """Every problem with `new` (empty when valid); ids are those of the template's own guild."""
    problems: list[tuple[str, str]] = []
    name = new.name.strip()
    if not name or len(name) > MAX_NAME:
        problems.append(("name", f"must be 1–{MAX_NAME} characters"))
    if new.description is not None and len(new.description) > MAX_DESCRIPTION:
        problems.append(("description", f"must be at most {MAX_DESCRIPTION} characters"))
    problems.extend(validate_trigger(new.trigger_type, new.trigger_config))
    for name_, value in (("xp_reward", new.xp_reward), ("gold_reward", new.gold_reward)):
        if not 0 <= value <= MAX_TEMPLATE_REWARD:
            problems.append((name_, f"must be between 0 and {MAX_TEMPLATE_REWARD:,}"))
    if new.max_earners is not None and new.max_earners < 1:
        problems.append(("max_earners", "must be at least 1"))
    if new.category_id is not None and new.category_id not in category_ids:
        problems.append(("category", "unknown in this server"))
    if new.rarity_id is not None and new.rarity_id not in rarity_ids:
        problems.append(("rarity", "unknown in this server"))
    if new.series_id is not None and new.series_id not in series_ids:
        problems.append(("series", "unknown in this server"))
    if (new.series_id is None) != (new.series_order is None):
        problems.append(("series_order", "required exactly when series_id is set"))
    elif new.series_order is not None and new.series_order < 1:
        problems.append(("series_order", "must be at least 1"))
    url = new.badge_image_url
    if url is not None and (not url.startswith("https://") or len(url) > MAX_URL or len(url) <= len("https://")):
        problems.append(("badge_image_url", f"must be an https URL of at most {MAX_URL} characters"))
    return problems


# --- SQL ---------------------------------------------------------------------------------------------------------

TEMPLATE_COLUMNS: Final = (
    "id, name, description, category_id, rarity_id, series_id, series_order, trigger_type, trigger_config, "
    "xp_reward, gold_reward, badge_image_url, announce_channel_id, is_hidden, max_earners, earned_count, active, "
    "created_at, updated_at"
)
_REFS = text(
    """
    SELECT 'category' AS kind, id FROM achievement_categories WHERE guild_id = :g
    UNION ALL SELECT 'rarity', id FROM achievement_rarities WHERE guild_id = :g
    UNION ALL SELECT 'series', id FROM achievement_series WHERE guild_id = :g
    """
)
_INSERT = text(
    f"""
    INSERT INTO achievement_templates
           (guild_id, name, description, category_id, rarity_id, series_id, series_order, trigger_type,
            trigger_config, xp_reward, gold_reward, badge_image_url, announce_channel_id, is_hidden, max_earners,
            active)
    VALUES (:g, :name, :description, :category_id, :rarity_id, :series_id, :series_order, :trigger_type,
            :trigger_config, :xp_reward, :gold_reward, :badge_image_url, :announce_channel_id, :is_hidden,
            :max_earners, :active)
    RETURNING {TEMPLATE_COLUMNS}
    """
).bindparams(bindparam("trigger_config", type_=JSONB))
_UPDATE = text(
    f"""
    UPDATE achievement_templates
       SET name = :name, description = :description, category_id = :category_id, rarity_id = :rarity_id,
           series_id = :series_id, series_order = :series_order, trigger_type = :trigger_type,
           trigger_config = :trigger_config, xp_reward = :xp_reward, gold_reward = :gold_reward,
           badge_image_url = :badge_image_url, announce_channel_id = :announce_channel_id, is_hidden = :is_hidden,
           max_earners = :max_earners, active = :active, updated_at = now()
     WHERE guild_id = :g AND id = :id
    RETURNING {TEMPLATE_COLUMNS}
    """
).bindparams(bindparam("trigger_config", type_=JSONB))
_LOCK_TEMPLATE = text(
    f"SELECT {TEMPLATE_COLUMNS} FROM achievement_templates WHERE guild_id = :g AND id = :id FOR UPDATE"
).columns(trigger_config=JSONB)
_GET_TEMPLATE = text(f"SELECT {TEMPLATE_COLUMNS} FROM achievement_templates WHERE guild_id = :g AND id = :id").columns(
    trigger_config=JSONB
)
_LIST_TEMPLATES = text(
    f"SELECT {TEMPLATE_COLUMNS} FROM achievement_templates WHERE guild_id = :g "
    "ORDER BY series_id NULLS FIRST, series_order NULLS FIRST, id"
).columns(trigger_config=JSONB)
_EARNED_ANY = text("SELECT 1 FROM member_achievements WHERE template_id = :id LIMIT 1")
_DELETE_TEMPLATE = text("DELETE FROM achievement_templates WHERE guild_id = :g AND id = :id")
_EARNERS = text(
    """
    SELECT a.user_id, COALESCE(m.display_name, CAST(a.user_id AS text)) AS display_name, a.earned_at, a.source,
           a.granted_by, count(*) OVER () AS total
      FROM member_achievements a
      LEFT JOIN members m ON m.guild_id = a.guild_id AND m.user_id = a.user_id
     WHERE a.guild_id = :g AND a.template_id = :id
     ORDER BY a.earned_at DESC, a.user_id
     LIMIT :limit OFFSET :offset
    """
)
_EARNER_COUNT = text("SELECT count(*) FROM member_achievements WHERE guild_id = :g AND template_id = :id")


def _row_dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def snapshot(row: Mapping[str, Any]) -> dict[str, Any]:
    """A template row as JSON for the audit trail (ids and times as text)."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("created_at", "updated_at"):
            out[key] = value.isoformat()
        elif key in ("announce_channel_id",) and value is not None:
            out[key] = str(value)
        else:
            out[key] = value
    return out


def _params(guild_id: int, new: NewTemplate, config: Mapping[str, object]) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(new, name) for name in WRITABLE}
    values.update(g=guild_id, name=new.name.strip(), trigger_config=dict(config))
    return values


def _clash(exc: IntegrityError) -> CatalogueConflict:
    """The unique index or CHECK a write ran into, as the conflict the admin sees."""
    text_ = str(exc.orig)
    if "series_order" in text_ or "series_id" in text_:
        return CatalogueConflict("another template already has this series_order in the series", "series_order_taken")
    if "max_earners" in text_ or "earned_count" in text_:
        return CatalogueConflict("max_earners is below the number of members who earned it", "max_earners_below_earned")
    if "name" in text_:
        return TemplateNameTaken()
    return CatalogueConflict("the change clashes with the current catalogue")


async def guild_refs(s: AsyncSession | AsyncConnection, guild_id: int) -> GuildRefs:
    """The category, rarity and series ids of the guild, as the current transaction sees them."""
    kinds: dict[str, list[int]] = {"category": [], "rarity": [], "series": []}
    for row in await s.execute(_REFS, {"g": guild_id}):
        kinds[row.kind].append(int(row.id))
    return GuildRefs(set(kinds["category"]), set(kinds["rarity"]), set(kinds["series"]))


def _checked(new: NewTemplate, refs: GuildRefs) -> dict[str, object]:
    problems = template_problems(
        new, category_ids=refs.category_ids, rarity_ids=refs.rarity_ids, series_ids=refs.series_ids
    )
    if problems:
        raise TemplateRejected(problems)
    return normalized_trigger_config(new.trigger_type, new.trigger_config)


class Catalogue:
    """Achievement catalogue writes and admin reads; stateless, built by the runtime (or per API request)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _write(self, name: str, attempt: Callable[[], Awaitable[T]]) -> T:
        return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries(name))

    # --- templates -----------------------------------------------------------------------------------------------

    async def create_template(self, *, guild_id: int, new: NewTemplate, actor: Actor) -> CreatedTemplate:
        """Insert a template (validated against the guild's references in the same transaction)."""
        row = await self.create(guild_id=guild_id, new=new, actor=actor)
        return CreatedTemplate(
            int(row["id"]),
            row["name"],
            row["trigger_type"],
            row["trigger_config"],
            row["xp_reward"],
            row["gold_reward"],
        )

    async def create(self, *, guild_id: int, new: NewTemplate, actor: Actor) -> dict[str, Any]:
        """Insert a template and return its full row; `TemplateRejected` (400) or `TemplateNameTaken` (409)."""

        async def attempt() -> dict[str, Any]:
            try:
                async with self._db.sessions.begin() as s:
                    config = _checked(new, await guild_refs(s, guild_id))
                    row = _row_dict((await s.execute(_INSERT, _params(guild_id, new, config))).one())
                    row["trigger_config"] = config  # in the admin's key order (jsonb reorders keys)
                    await record(
                        s,
                        actor,
                        guild_id=guild_id,
                        action="achievement.create",
                        target_type="achievement_template",
                        target_id=str(row["id"]),
                        after=snapshot(row),
                    )
                    await notify_config(s, "achievement_templates", guild_id)
                    return row
            except IntegrityError as exc:  # the same name (or series tier) committed concurrently
                raise _clash(exc) from exc

        return await self._write("create_template", attempt)

    async def update(
        self, *, guild_id: int, template_id: int, changes: Mapping[str, Any], actor: Actor
    ) -> dict[str, Any]:
        """Merge `changes` (SPEC §18 PATCH) into the template and validate the result as a whole."""
        unknown = set(changes) - WRITABLE
        if unknown:
            raise TemplateRejected([(name, "unknown field") for name in sorted(unknown)])

        async def attempt() -> dict[str, Any]:
            try:
                async with self._db.sessions.begin() as s:
                    found = (await s.execute(_LOCK_TEMPLATE, {"g": guild_id, "id": template_id})).first()
                    if found is None:
                        raise CatalogueNotFound()
                    before = _row_dict(found)
                    current = NewTemplate(**{name: before[name] for name in WRITABLE})
                    merged = replace(current, **changes)
                    config = _checked(merged, await guild_refs(s, guild_id))
                    if merged.max_earners is not None and merged.max_earners < int(before["earned_count"]):
                        raise CatalogueConflict(
                            "max_earners is below the number of members who earned it", "max_earners_below_earned"
                        )
                    params = {**_params(guild_id, merged, config), "id": template_id}
                    row = _row_dict((await s.execute(_UPDATE, params)).one())
                    await record(
                        s,
                        actor,
                        guild_id=guild_id,
                        action="achievement.update",
                        target_type="achievement_template",
                        target_id=str(template_id),
                        before=snapshot(before),
                        after=snapshot(row),
                    )
                    await notify_config(s, "achievement_templates", guild_id)
                    return row
            except IntegrityError as exc:
                raise _clash(exc) from exc

        return await self._write("update_template", attempt)

    async def delete(self, *, guild_id: int, template_id: int, actor: Actor) -> None:
        """Delete a template nobody has earned (§12.3: otherwise 409, deactivate it instead)."""

        async def attempt() -> None:
            try:
                async with self._db.sessions.begin() as s:
                    found = (await s.execute(_LOCK_TEMPLATE, {"g": guild_id, "id": template_id})).first()
                    if found is None:
                        raise CatalogueNotFound()
                    if (await s.execute(_EARNED_ANY, {"id": template_id})).first() is not None:
                        raise CatalogueConflict("members have earned this achievement; deactivate it instead", "earned")
                    await s.execute(_DELETE_TEMPLATE, {"g": guild_id, "id": template_id})
                    await record(
                        s,
                        actor,
                        guild_id=guild_id,
                        action="achievement.delete",
                        target_type="achievement_template",
                        target_id=str(template_id),
                        before=snapshot(_row_dict(found)),
                    )
                    await notify_config(s, "achievement_templates", guild_id)
            except IntegrityError as exc:  # earned by a grant that committed after our check (the FK restricts)
                raise CatalogueConflict(
                    "members have earned this achievement; deactivate it instead", "earned"
                ) from exc

        await self._write("delete_template", attempt)


async def list_templates(conn: AsyncConnection, guild_id: int) -> list[dict[str, Any]]:
    """Every template of the guild, inactive and hidden included, in the cache's order."""
    return [_row_dict(r) for r in await conn.execute(_LIST_TEMPLATES, {"g": guild_id})]


async def get_template(conn: AsyncConnection, guild_id: int, template_id: int) -> dict[str, Any] | None:
    row = (await conn.execute(_GET_TEMPLATE, {"g": guild_id, "id": template_id})).first()
    return None if row is None else _row_dict(row)


@dataclass(frozen=True, slots=True)
class EarnersPage:
    items: list[dict[str, Any]]
    total: int


async def earners(
    conn: AsyncConnection, guild_id: int, template_id: int, *, limit: int, offset: int
) -> EarnersPage | None:
    """Who earned the template, newest first; None for an unknown template."""
    if await get_template(conn, guild_id, template_id) is None:
        return None
    params = {"g": guild_id, "id": template_id, "limit": limit, "offset": offset}
    rows = [_row_dict(r) for r in await conn.execute(_EARNERS, params)]
    total = rows[0]["total"] if rows else (await conn.execute(_EARNER_COUNT, params)).scalar_one()
    return EarnersPage(rows, int(total))


def template_warnings(row: Mapping[str, Any], *, season_active: bool, sources_off: Collection[str] = ()) -> list[str]:
    """What an admin should know about a template's switches (the list's "toggle warnings", SPEC §20, §12.2);
    `sources_off` are the lake event types whose `lake.source.<type>` is off in the guild (nothing counts them)."""
    warnings: list[str] = []
    if not row["active"]:
        warnings.append("inactive: not evaluated, not grantable, absent from the gallery")
    if row["max_earners"] is not None and row["earned_count"] >= row["max_earners"]:
        warnings.append("full: max_earners reached, it awards nobody else")
    if row["is_hidden"]:
        warnings.append("hidden: name, description and criteria are withheld from public surfaces")
    if row["trigger_type"] == "manual":
        warnings.append("manual: never earned automatically, only granted")
    elif row["trigger_config"].get("scope") == "season" and not season_active:
        warnings.append("season scope: cannot fire while no season is active")
    if row["trigger_type"] == "event_count" and row["trigger_config"].get("event_type") in sources_off:
        source = row["trigger_config"]["event_type"]
        warnings.append(f"lake source off: lake.source.{source} is off, so {source} events are not counted")
    return warnings


# --- categories, rarities, series ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefKind:
    """One of the catalogue's reference tables: its writable columns (fixed here, never taken from input), its
    audit names and its list order. Templates point at these rows, so every change also reloads the templates."""

    table: str
    columns: tuple[str, ...]
    action: str  # audit action prefix (`category.create`, …)
    target_type: str
    order: str


CATEGORIES: Final = RefKind(
    "achievement_categories", ("name", "icon", "sort_order"), "category", "achievement_category", "sort_order, id"
)
RARITIES: Final = RefKind(
    "achievement_rarities", ("name", "color", "emoji", "sort_order"), "rarity", "achievement_rarity", "sort_order, id"
)
SERIES: Final = RefKind("achievement_series", ("name", "description"), "series", "achievement_series", "name, id")
_SERIES_TIERS = text(
    """
    SELECT series_id, id, name, series_order, active FROM achievement_templates
     WHERE guild_id = :g AND series_id IS NOT NULL ORDER BY series_id, series_order, id
    """
)


def _ref_columns(kind: RefKind) -> str:
    return ", ".join(("id", *kind.columns))


async def _ref_notify(s: AsyncSession, kind: RefKind, guild_id: int) -> None:
    await notify_config(s, kind.table, guild_id)
    await notify_config(s, "achievement_templates", guild_id)  # the cache's templates carry these references


class References:
    """Writes of categories, rarities and series (SPEC §12.1); a taken name is `CatalogueConflict` (409)."""

    def __init__(self, db: Database, kind: RefKind) -> None:
        self._db = db
        self._kind = kind

    async def _run(self, name: str, attempt: Callable[[], Awaitable[T]]) -> T:
        async def guarded() -> T:
            try:
                return await attempt()
            except IntegrityError as exc:
                raise CatalogueConflict(f"a {self._kind.action} with this name already exists", "name_taken") from exc

        return await retry_transient(guarded, policy=INTERACTIVE, on_retry=log_retries(name))

    async def create(self, *, guild_id: int, values: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        kind = self._kind
        given = {c: values[c] for c in kind.columns if c in values}
        names = ", ".join(("guild_id", *given))
        binds = ", ".join(f":{c}" for c in ("g", *given))
        insert = text(f"INSERT INTO {kind.table} ({names}) VALUES ({binds}) RETURNING {_ref_columns(kind)}")

        async def attempt() -> dict[str, Any]:
            async with self._db.sessions.begin() as s:
                row = _row_dict((await s.execute(insert, {"g": guild_id, **given})).one())
                await record(
                    s, actor, guild_id=guild_id, action=f"{kind.action}.create", target_type=kind.target_type,
                    target_id=str(row["id"]), after=row,
                )  # fmt: skip
                await _ref_notify(s, kind, guild_id)
                return row

        return await self._run(f"create_{kind.action}", attempt)

    async def update(self, *, guild_id: int, ref_id: int, changes: Mapping[str, Any], actor: Actor) -> dict[str, Any]:
        kind = self._kind
        given = {c: changes[c] for c in kind.columns if c in changes}
        sets = ", ".join(f"{c} = :{c}" for c in given) or "id = id"
        cols = _ref_columns(kind)
        lock = text(f"SELECT {cols} FROM {kind.table} WHERE guild_id = :g AND id = :id FOR UPDATE")
        update = text(f"UPDATE {kind.table} SET {sets} WHERE guild_id = :g AND id = :id RETURNING {cols}")

        async def attempt() -> dict[str, Any]:
            async with self._db.sessions.begin() as s:
                found = (await s.execute(lock, {"g": guild_id, "id": ref_id})).first()
                if found is None:
                    raise CatalogueNotFound()
                row = _row_dict((await s.execute(update, {"g": guild_id, "id": ref_id, **given})).one())
                await record(
                    s, actor, guild_id=guild_id, action=f"{kind.action}.update", target_type=kind.target_type,
                    target_id=str(ref_id), before=_row_dict(found), after=row,
                )  # fmt: skip
                await _ref_notify(s, kind, guild_id)
                return row

        return await self._run(f"update_{kind.action}", attempt)

    async def delete(self, *, guild_id: int, ref_id: int, actor: Actor) -> None:
        """Delete the row; the templates' references to it become NULL (§12.3), by the table's BEFORE DELETE
        trigger (migration 0014), in this transaction, so the NOTIFY of templates below covers them."""
        kind = self._kind
        delete = text(f"DELETE FROM {kind.table} WHERE guild_id = :g AND id = :id RETURNING {_ref_columns(kind)}")

        async def attempt() -> None:
            async with self._db.sessions.begin() as s:
                found = (await s.execute(delete, {"g": guild_id, "id": ref_id})).first()
                if found is None:
                    raise CatalogueNotFound()
                await record(
                    s, actor, guild_id=guild_id, action=f"{kind.action}.delete", target_type=kind.target_type,
                    target_id=str(ref_id), before=_row_dict(found),
                )  # fmt: skip
                await _ref_notify(s, kind, guild_id)

        await self._run(f"delete_{kind.action}", attempt)


async def list_refs(conn: AsyncConnection, kind: RefKind, guild_id: int) -> list[dict[str, Any]]:
    """The guild's rows of `kind`; series come with their tiers (templates in series order)."""
    sql = text(f"SELECT {_ref_columns(kind)} FROM {kind.table} WHERE guild_id = :g ORDER BY {kind.order}")
    rows = [_row_dict(r) for r in await conn.execute(sql, {"g": guild_id})]
    if kind is SERIES:
        tiers: dict[int, list[dict[str, Any]]] = {}
        for tier in await conn.execute(_SERIES_TIERS, {"g": guild_id}):
            entry = {"id": tier.id, "name": tier.name, "series_order": tier.series_order, "active": tier.active}
            tiers.setdefault(int(tier.series_id), []).append(entry)
        for row in rows:
            row["tiers"] = tiers.get(int(row["id"]), [])
    return rows
