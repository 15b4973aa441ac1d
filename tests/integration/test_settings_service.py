"""Settings writes against a real PostgreSQL: all-or-nothing, audited, typed (SPEC §5.1; invariant 6 of §27)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from synapse_async.db.engine import Database
from synapse_async.services.audit import Actor
from synapse_async.services.settings import SettingsRejected, reset_setting, update_settings

GUILD = 920000000000000001
ACTOR = Actor("svc:test", "service", "api", request_id="req-1")


@pytest.fixture(scope="module")
async def db(migrated_database: str) -> AsyncIterator[Database]:
    database = Database(migrated_database, pool_size=2, max_overflow=0, pool_timeout=5, statement_timeout_ms=15000)
    async with database.sessions.begin() as s:
        await s.execute(
            text(
                "INSERT INTO guild_channels (guild_id, channel_id, name, type, position) VALUES"
                " (:g, 1001, 'general', 'text', 0), (:g, 1002, 'Lounge', 'voice', 1)"
            ),
            {"g": GUILD},
        )
        await s.execute(
            text(
                "INSERT INTO guild_roles (guild_id, role_id, name, position, permissions, managed) VALUES"
                " (:g, 2001, 'Admin', 1, 8, false), (:g, :g, '@everyone', 0, 0, false)"
            ),
            {"g": GUILD},
        )
    yield database
    await database.dispose()


async def _stored(db: Database) -> dict[str, object]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(text("SELECT key, value FROM settings WHERE guild_id = :g"), {"g": GUILD})
        return {r.key: r.value for r in rows}


async def _audit_count(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM audit_log WHERE guild_id = :g"), {"g": GUILD})).scalar_one()
        )


async def test_one_bad_key_among_good_ones_writes_nothing_and_names_it(db: Database) -> None:
    with pytest.raises(SettingsRejected) as info:
        await update_settings(
            db.sessions,
            GUILD,
            {"rewards.message.xp": 20, "cooldown.seconds": 99999, "economy.xp_name": "Points"},
            ACTOR,
        )
    assert [(p.field, p.problem) for p in info.value.problems] == [("cooldown.seconds", "out_of_range")]
    assert await _stored(db) == {}
    assert await _audit_count(db) == 0


@pytest.mark.parametrize(
    ("values", "field", "problem"),
    [
        ({"rewards.message.xp": True}, "rewards.message.xp", "invalid_type"),
        ({"rewards.message.xp": 5.0}, "rewards.message.xp", "invalid_type"),
        ({"rewards.message.xp": "5"}, "rewards.message.xp", "invalid_type"),
        ({"voice.require_others": 1}, "voice.require_others", "invalid_type"),
        ({"no.such.key": 1}, "no.such.key", "unknown_setting"),
        ({"cooldown.scope": "guild"}, "cooldown.scope", "not_allowed"),
        ({"quality.long_chars": 100}, "quality.long_chars", "constraint"),
        ({"announce.channel_id": "1002"}, "announce.channel_id", "not_allowed"),
        ({"access.admin_role_ids": [str(GUILD)]}, "access.admin_role_ids", "not_allowed"),
    ],
)
async def test_wrong_types_and_rules_are_rejected(
    db: Database, values: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(SettingsRejected) as info:
        await update_settings(db.sessions, GUILD, values, ACTOR)
    assert (info.value.problems[0].field, info.value.problems[0].problem) == (field, problem)
    assert await _stored(db) == {}


async def test_valid_write_is_stored_audited_and_reset(db: Database) -> None:
    change = await update_settings(
        db.sessions,
        GUILD,
        {
            "rewards.message.xp": 20,
            "announce.channel_id": 1001,
            "access.admin_role_ids": ["2001"],
            "leveling.level_base": 120,
        },
        ACTOR,
    )
    assert change.changed["rewards.message.xp"] == (15, 20)
    assert change.jobs == {"relevel"}
    assert await _stored(db) == {
        "rewards.message.xp": 20,
        "announce.channel_id": "1001",
        "access.admin_role_ids": ["2001"],
        "leveling.level_base": 120,
    }
    assert await _audit_count(db) == 4
    again = await update_settings(db.sessions, GUILD, {"rewards.message.xp": 20}, ACTOR)
    assert again.changed == {} and await _audit_count(db) == 4

    reset = await reset_setting(db.sessions, GUILD, "rewards.message.xp", ACTOR)
    assert reset.changed == {"rewards.message.xp": (20, 15)}
    assert "rewards.message.xp" not in await _stored(db)
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT action, actor_id, via, request_id FROM audit_log"
                    " WHERE guild_id = :g ORDER BY id DESC LIMIT 1"
                ),
                {"g": GUILD},
            )
        ).one()
    assert tuple(row) == ("settings.reset", "svc:test", "api", "req-1")
