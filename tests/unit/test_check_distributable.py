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


# ---- rule 5: joins in the application's SQL ------------------------------------------------------------------

_GUILD_TABLES = ("members", "achievement_templates", "achievement_rarities", "seasons")


def test_a_join_that_equates_guild_id_passes() -> None:
    sql = '''
    _Q = """
    SELECT t.name, r.name FROM member_achievements a
      JOIN achievement_templates t ON t.guild_id = a.guild_id AND t.id = a.template_id
      LEFT JOIN achievement_rarities r
        ON r.guild_id = t.guild_id AND r.id = t.rarity_id AND r.name <> 'x'
      JOIN seasons USING (guild_id, season_id)
      JOIN jobs j ON j.job_id = a.job_id
     WHERE a.guild_id = :g
    """
    '''
    assert cd.unpaired_joins(sql, _GUILD_TABLES, "m.py") == []


def test_a_join_by_id_alone_is_reported_with_its_line() -> None:
    sql = (
        'X = """\n'
        "SELECT 1 FROM member_achievements a\n"
        "  JOIN achievement_templates t ON t.id = a.template_id\n"
        "  LEFT JOIN achievement_rarities AS r ON r.id = t.rarity_id WHERE a.guild_id = :g\n"
        '"""\n'
        'Y = "SELECT 1 FROM season_stats st JOIN seasons s USING (season_id) WHERE st.guild_id = $1"\n'
    )
    assert cd.unpaired_joins(sql, _GUILD_TABLES, "m.py") == [
        "m.py:3: join of achievement_templates does not equate guild_id: JOIN achievement_templates t ON t.id = "
        "a.template_id",
        "m.py:4: join of achievement_rarities does not equate guild_id: JOIN achievement_rarities AS r ON r.id = "
        "t.rarity_id",
        "m.py:6: join of seasons does not equate guild_id: JOIN seasons s USING (season_id)",
    ]


def test_the_guild_id_of_a_later_clause_does_not_excuse_a_join() -> None:
    sql = '"""SELECT 1 FROM a JOIN members m ON m.user_id = a.user_id WHERE a.guild_id = m.guild_id"""'
    assert len(cd.unpaired_joins(sql, _GUILD_TABLES)) == 1


def test_source_joins_reads_every_module_under_the_root(tmp_path: Path) -> None:
    package = tmp_path / "app"
    (package / "services").mkdir(parents=True)
    (package / "services" / "ok.py").write_text('Q = "SELECT 1 FROM x JOIN members m ON m.guild_id = x.guild_id"\n')
    (package / "services" / "bad.py").write_text('\nQ = "SELECT 1 FROM x JOIN members m ON m.user_id = x.user_id"\n')
    tables = [cd.Table("members", ("guild_id", "user_id")), cd.Table("jobs", ("job_id",))]
    assert cd.source_joins(tables, package) == [
        "app/services/bad.py:2: join of members does not equate guild_id: JOIN members m ON m.user_id = x.user_id"
    ]
