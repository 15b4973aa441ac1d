"""Creating achievement templates (SPEC §12.1–§12.3): `/create-achievement` now, the admin API's POST later.

`template_problems` is the whole validation, pure and exhaustive (every problem at once, as `(field, problem)`
pairs): the command lists them in its reply and the API returns them as a 400 `validation_error`. Category and
rarity must belong to the template's guild; that is checked against the caller's view of the guild (the config
cache) and again by the insert itself, which selects them within the guild, so a category deleted meanwhile can
never be linked across guilds. The insert, its audit row and the `achievement_templates` NOTIFY commit together.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from synapse_async.db.engine import Database
from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.db.models import MAX_TEMPLATE_REWARD
from synapse_async.db.notify import notify_config
from synapse_async.rewards.achievements import normalized_trigger_config, validate_trigger
from synapse_async.services.audit import Actor, record

MAX_NAME = 100
MAX_DESCRIPTION = 500


class TemplateRejected(Exception):
    """Nothing was written; `problems` are `(field, problem)` pairs (a taken name is `("name", "already exists")`)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {p}" for f, p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class NewTemplate:
    name: str
    trigger_type: str
    trigger_config: Mapping[str, object] = field(default_factory=dict)
    description: str | None = None
    category_id: int | None = None
    rarity_id: int | None = None
    xp_reward: int = 0
    gold_reward: int = 0
    is_hidden: bool = False
    max_earners: int | None = None


@dataclass(frozen=True, slots=True)
class CreatedTemplate:
    template_id: int
    name: str
    trigger_type: str
    trigger_config: Mapping[str, object]
    xp_reward: int
    gold_reward: int


def template_problems(
    new: NewTemplate, *, category_ids: Collection[int], rarity_ids: Collection[int]
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
    return problems


_INSERT = text(
    """
    INSERT INTO achievement_templates
           (guild_id, name, description, category_id, rarity_id, trigger_type, trigger_config,
            xp_reward, gold_reward, is_hidden, max_earners)
    SELECT CAST(:g AS bigint), CAST(:name AS varchar), CAST(:description AS varchar),
           (SELECT id FROM achievement_categories WHERE guild_id = :g AND id = CAST(:category AS bigint)),
           (SELECT id FROM achievement_rarities WHERE guild_id = :g AND id = CAST(:rarity AS bigint)),
           CAST(:trigger_type AS text), :trigger_config, CAST(:xp_reward AS bigint), CAST(:gold_reward AS bigint),
           CAST(:is_hidden AS boolean), CAST(:max_earners AS bigint)
     WHERE NOT EXISTS (SELECT 1 FROM achievement_templates WHERE guild_id = :g AND name = CAST(:name AS varchar))
    RETURNING id
    """
).bindparams(bindparam("trigger_config", type_=JSONB))


class Catalogue:
    """Achievement catalogue writes; built once by the runtime."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_template(
        self,
        *,
        guild_id: int,
        new: NewTemplate,
        actor: Actor,
        category_ids: Collection[int],
        rarity_ids: Collection[int],
    ) -> CreatedTemplate:
        if problems := template_problems(new, category_ids=category_ids, rarity_ids=rarity_ids):
            raise TemplateRejected(problems)
        config = normalized_trigger_config(new.trigger_type, new.trigger_config)
        params = {
            "g": guild_id,
            "name": new.name.strip(),
            "description": new.description,
            "category": new.category_id,
            "rarity": new.rarity_id,
            "trigger_type": new.trigger_type,
            "trigger_config": config,
            "xp_reward": new.xp_reward,
            "gold_reward": new.gold_reward,
            "is_hidden": new.is_hidden,
            "max_earners": new.max_earners,
        }

        async def attempt() -> CreatedTemplate:
            try:
                async with self._db.sessions.begin() as s:
                    template_id = (await s.execute(_INSERT, params)).scalar()
                    if template_id is None:
                        raise TemplateRejected([("name", "already exists")])
                    snapshot = {k: v for k, v in params.items() if k != "g"}
                    await record(
                        s,
                        actor,
                        guild_id=guild_id,
                        action="achievement.create",
                        target_type="achievement_template",
                        target_id=str(template_id),
                        after=snapshot,
                    )
                    await notify_config(s, "achievement_templates", guild_id)
            except IntegrityError as exc:  # the same name committed concurrently
                raise TemplateRejected([("name", "already exists")]) from exc
            return CreatedTemplate(
                int(template_id), new.name.strip(), new.trigger_type, config, new.xp_reward, new.gold_reward
            )

        return await retry_transient(attempt, policy=INTERACTIVE, on_retry=log_retries("create_template"))
