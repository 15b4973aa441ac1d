"""Writing per-guild settings (SPEC §5.1): validated all-or-nothing, audited per key, NOTIFY in the transaction.

Writes for one guild are serialized with a transaction-scoped advisory lock, so the cross-field rule
(`quality.long_chars` > `quality.medium_chars`) is checked against the set that will really result even when two
admins write at once. If any key is invalid nothing is written: the exception leaves the transaction, which rolls
back, and the caller receives one problem per bad key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from synapse_async.db.faults import INTERACTIVE, log_retries, retry_transient
from synapse_async.db.notify import notify_config
from synapse_async.jobs.store import enqueue
from synapse_async.services.audit import Actor, record
from synapse_async.settings import (
    REGISTRY,
    Problem,
    jobs_triggered,
    normalize_stored,
    to_json,
    validate_reset,
    validate_updates,
)


class SettingsRejected(Exception):
    """Validation failed; nothing was written. `problems` has one entry per problem (SPEC §5.1)."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.problem}" for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """What a write changed: key -> (before, after) in JSON form, and the jobs the change calls for."""

    changed: dict[str, tuple[object, object]] = field(default_factory=dict)
    jobs: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class _DbGuildContext:
    text_channels: frozenset[int]
    roles: frozenset[int]

    def text_channel_ids(self) -> Collection[int]:
        return self.text_channels

    def role_ids(self) -> Collection[int]:
        return self.roles


_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))")
_CURRENT = text("SELECT key, value FROM settings WHERE guild_id = :g").columns(value=JSONB)
_UPSERT = text(
    """
    INSERT INTO settings (guild_id, key, value, updated_at, updated_by)
    VALUES (:g, :key, :value, now(), :by)
    ON CONFLICT (guild_id, key)
    DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by
    """
).bindparams(bindparam("value", type_=JSONB))
_DELETE = text("DELETE FROM settings WHERE guild_id = :g AND key = :key")


async def _current(session: AsyncSession, guild_id: int) -> dict[str, object]:
    await session.execute(_LOCK, {"k": f"settings:{guild_id}"})
    current: dict[str, object] = {}
    for row in (await session.execute(_CURRENT, {"g": guild_id})).all():
        if row.key in REGISTRY:
            try:
                current[row.key] = normalize_stored(row.key, row.value)
            except ValueError:
                continue  # an unusable stored value counts as the default and is overwritten by valid writes
    return current


async def _guild_context(session: AsyncSession, guild_id: int) -> _DbGuildContext:
    channels = await session.execute(
        text(
            "SELECT channel_id FROM guild_channels WHERE guild_id = :g AND deleted_at IS NULL"
            " AND type IN ('text', 'announcement')"
        ),
        {"g": guild_id},
    )
    # @everyone (role id = guild id) is never an admin role: it would make every member an admin.
    roles = await session.execute(
        text("SELECT role_id FROM guild_roles WHERE guild_id = :g AND deleted_at IS NULL AND role_id <> :g"),
        {"g": guild_id},
    )
    return _DbGuildContext(frozenset(r[0] for r in channels.all()), frozenset(r[0] for r in roles.all()))


async def _retrying(write: Callable[[], Awaitable[SettingsChange]]) -> SettingsChange:
    """Transient faults (db/faults.py) retry the whole write. A retry after a COMMIT that did happen is harmless:
    each attempt compares against the stored values, so it changes, audits, notifies and enqueues nothing."""
    return await retry_transient(write, policy=INTERACTIVE, on_retry=log_retries("settings_write"))


async def update_settings(
    sessions: async_sessionmaker[AsyncSession],
    guild_id: int,
    values: Mapping[str, object],
    actor: Actor,
    *,
    action: str = "settings.update",
) -> SettingsChange:
    """Validate and store `values` for the guild in one transaction; raise SettingsRejected on any problem.
    `action` names the audit rows (one per changed key): `data_sources.update` for the lake's switches (§22)."""
    return await _retrying(lambda: _update(sessions, guild_id, values, actor, action))


async def _update(
    sessions: async_sessionmaker[AsyncSession],
    guild_id: int,
    values: Mapping[str, object],
    actor: Actor,
    action: str,
) -> SettingsChange:
    async with sessions.begin() as session:
        current = await _current(session, guild_id)
        normalized, problems = validate_updates(values, current, await _guild_context(session, guild_id))
        if problems:
            raise SettingsRejected(problems)
        changed: dict[str, tuple[object, object]] = {}
        for key, value in normalized.items():
            before = current.get(key, REGISTRY[key].default)
            if before == value:
                # The value the key already has (stored, or the default when unset) is no change (§20): no row, no
                # audit, no NOTIFY, no relevel.
                continue
            after_json = to_json(key, value)
            await session.execute(_UPSERT, {"g": guild_id, "key": key, "value": after_json, "by": actor.actor_id})
            before_json = to_json(key, before)
            changed[key] = (before_json, after_json)
            await record(
                session,
                actor,
                guild_id=guild_id,
                action=action,
                target_type="setting",
                target_id=key,
                before={"key": key, "value": before_json, "is_default": key not in current},
                after={"key": key, "value": after_json},
            )
        jobs = frozenset(jobs_triggered(set(changed)))
        for kind in sorted(jobs):  # relevel / level_role_sync (SPEC §5.1): never fails the settings write
            await enqueue(session, guild_id, kind, actor.actor_id)
        if changed:
            await notify_config(session, "settings", guild_id)
    return SettingsChange(changed, jobs)


async def check_settings(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, values: Mapping[str, object]
) -> dict[str, object]:
    """Validate `values` exactly as `update_settings` would and return them normalized, writing nothing (the
    `dry_run` preview of a level-role mode change, SPEC §13); raise SettingsRejected on any problem."""
    async with sessions() as session:
        current = await _current(session, guild_id)
        normalized, problems = validate_updates(values, current, await _guild_context(session, guild_id))
    if problems:
        raise SettingsRejected(problems)
    return dict(normalized)


async def reset_setting(
    sessions: async_sessionmaker[AsyncSession], guild_id: int, key: str, actor: Actor
) -> SettingsChange:
    """Return one key to its default (delete the override), with the same guarantees as `update_settings`."""
    return await _retrying(lambda: _reset(sessions, guild_id, key, actor))


async def _reset(sessions: async_sessionmaker[AsyncSession], guild_id: int, key: str, actor: Actor) -> SettingsChange:
    async with sessions.begin() as session:
        current = await _current(session, guild_id)
        problems = validate_reset([key], current)
        if problems:
            raise SettingsRejected(problems)
        if key not in current:
            return SettingsChange()
        await session.execute(_DELETE, {"g": guild_id, "key": key})
        if current[key] == REGISTRY[key].default:
            return SettingsChange()  # the override held the default: the value does not change (§20)
        before_json, after_json = to_json(key, current[key]), to_json(key, REGISTRY[key].default)
        await record(
            session,
            actor,
            guild_id=guild_id,
            action="settings.reset",
            target_type="setting",
            target_id=key,
            before={"key": key, "value": before_json},
            after={"key": key, "value": after_json, "is_default": True},
        )
        jobs = frozenset(jobs_triggered({key}))
        for kind in sorted(jobs):
            await enqueue(session, guild_id, kind, actor.actor_id)
        await notify_config(session, "settings", guild_id)
    return SettingsChange({key: (before_json, after_json)}, jobs)
