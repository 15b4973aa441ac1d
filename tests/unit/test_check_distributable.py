"""The distribution rules of `tools/check_distributable.py` over hand-written catalogs (no database)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "tools" / "check_distributable.py"
    spec = importlib.util.spec_from_file_location("check_distributable", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cd = _load()
GLOBALS = {"tokens": ("reference", "read everywhere"), "queue": ("local", "coordinator only")}


def _parent() -> object:
    return cd.Table("parent", ("guild_id", "id"), (cd.Key("pk_parent", "primary key", ("guild_id", "id")),))


def _tokens() -> object:
    return cd.Table("tokens", ("jti",), (cd.Key("pk_tokens", "primary key", ("jti",)),))


def _queue() -> object:
    return cd.Table("queue", ("job_id", "guild_id"), (cd.Key("pk_queue", "primary key", ("job_id",)),))


def _check(*tables: object, known: dict[str, str] | None = None) -> object:
    return cd.check([_parent(), _tokens(), _queue(), *tables], GLOBALS, known or {})


def test_guild_first_keys_and_colocated_foreign_keys_pass() -> None:
    child = cd.Table(
        "child",
        ("guild_id", "parent_id", "user_id", "token"),
        (
            cd.Key("pk_child", "primary key", ("guild_id", "parent_id", "user_id")),
            cd.Key("uq_child", "unique index", ("guild_id", "user_id")),
        ),
        (
            cd.ForeignKey("fk_parent", ("guild_id", "parent_id"), "parent", ("guild_id", "id")),
            cd.ForeignKey("fk_token", ("token",), "tokens", ("jti",)),
        ),
    )
    report = _check(child)
    assert report.violations == []
    assert report.known == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (cd.Key("pk_x", "primary key", ("id",)), "primary key pk_x (id) does not start with guild_id"),
        (cd.Key("uq_x", "unique constraint", ("id", "guild_id")), "unique constraint uq_x (id, guild_id) does not"),
        (cd.Key("uq_e", "unique index", (None, "guild_id")), "unique index uq_e (<expression>, guild_id) does not"),
    ],
)
def test_a_key_not_starting_with_guild_id_is_a_violation(key: object, message: str) -> None:
    keys = (key,) if key.kind == "primary key" else (cd.Key("pk_x", "primary key", ("guild_id", "id")), key)
    report = _check(cd.Table("x", ("id", "guild_id"), keys))
    assert any(message in v for v in report.violations), report.violations


def test_missing_primary_key_and_missing_guild_id_are_violations() -> None:
    report = _check(cd.Table("nokey", ("guild_id",)), cd.Table("orphan", ("name",)))
    assert any(v.startswith("nokey: has no primary key") for v in report.violations)
    assert any(v.startswith("orphan: has no guild_id column and is not listed") for v in report.violations)


def test_foreign_keys_must_be_colocated_and_respect_roles() -> None:
    pk = (cd.Key("pk_c", "primary key", ("guild_id", "parent_id")),)
    by_id = cd.Table("c1", ("guild_id", "parent_id"), pk, (cd.ForeignKey("f1", ("parent_id",), "parent", ("id",)),))
    crossed = cd.Table(
        "c2",
        ("guild_id", "parent_id"),
        pk,
        (cd.ForeignKey("f2", ("parent_id", "guild_id"), "parent", ("guild_id", "id")),),
    )
    to_local = cd.Table("c3", ("guild_id", "job_id"), pk, (cd.ForeignKey("f3", ("job_id",), "queue", ("job_id",)),))
    report = _check(by_id, crossed, to_local)
    assert any("c1: foreign key f1" in v and "not co-located" in v for v in report.violations)
    assert any("c2: foreign key f2" in v and "not co-located" in v for v in report.violations)
    assert any("c3: foreign key f3" in v and "cannot reference a local table" in v for v in report.violations)


def test_a_global_table_cannot_reference_a_distributed_one() -> None:
    tables = [
        _parent(),
        cd.Table("tokens", ("jti", "pid"), (), (cd.ForeignKey("f", ("pid",), "parent", ("id",)),)),
        _queue(),
    ]
    report = cd.check(tables, GLOBALS, {})
    assert any("a reference table cannot reference a distributed table" in v for v in report.violations)


def test_known_exceptions_are_reported_apart_and_cannot_go_stale() -> None:
    bad = cd.Table("legacy", ("id", "guild_id"), (cd.Key("pk_legacy", "primary key", ("id",)),))
    report = _check(bad, known={"legacy": "rekey to (guild_id, id)"})
    assert report.violations == []
    assert report.known == ["legacy: primary key pk_legacy (id) does not start with guild_id"]
    fixed = _check(_parent_like("legacy"), known={"legacy": "rekey"})
    assert fixed.violations == ["legacy: listed in KNOWN_EXCEPTIONS but breaks no rule (remove it)"]


def test_a_listed_global_table_that_no_longer_exists_is_reported() -> None:
    report = cd.check([_parent(), _tokens()], GLOBALS, {})
    assert report.violations == ["queue: listed in GLOBAL_TABLES but not in the schema (remove it)"]


def _parent_like(name: str) -> object:
    return cd.Table(name, ("guild_id", "id"), (cd.Key(f"pk_{name}", "primary key", ("guild_id", "id")),))
