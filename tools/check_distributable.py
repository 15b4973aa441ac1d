"""Check that the migrated schema can be distributed by `guild_id` (issue 27, docs/scale.md).

Past what one PostgreSQL can write, the plan is Citus with every guild-owned table distributed by `guild_id`. That
only works if the schema keeps a few rules, so this script reads the catalog of a migrated database and fails when a
table breaks one:

1. every table is either *distributed* (it has a `guild_id` column) or listed in `GLOBAL_TABLES` with its role
   (`reference`: small, copied to every node; `local`: stays on the coordinator) and the reason;
2. a distributed table's primary key and every unique constraint or unique index start with `guild_id`, so that
   uniqueness is decided inside one shard;
3. a foreign key between two distributed tables pairs `guild_id` with `guild_id` (the tables are co-located and
   the check never crosses guilds);
4. a foreign key between a distributed and a global table only goes from the distributed table to a reference
   table; local tables only reference local or reference tables.

Tables whose keys still break rule 2 or 3 and have not been rekeyed yet are listed in `KNOWN_EXCEPTIONS` with what
is left to do, so the list of remaining work lives in exactly one place and a *new* table never slips through.

Run: `python tools/check_distributable.py [DATABASE_URL]` (default: the `DATABASE_URL` environment variable).
It prints each violation and exits 1, or prints a one-line summary and exits 0. The rules themselves (`check`)
are a pure function over a catalog description, unit-tested without a database.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

DISTRIBUTION_COLUMN = "guild_id"

Role = Literal["reference", "local"]

# Tables that are not owned by one guild, with the Citus role each would take and why.
GLOBAL_TABLES: dict[str, tuple[Role, str]] = {
    "alembic_version": ("local", "Alembic's bookkeeping; migrations run on the coordinator only"),
    "oauth_states": ("local", "a pending web login belongs to a browser, not a guild; short-lived, coordinator only"),
    "revoked_tokens": (
        "reference",
        "every process checks a token's revocation on each request; small, so a copy on every node",
    ),
    "idempotency_keys": (
        "local",
        "keyed by (principal, route, key): one API caller's replay record, not a guild's data",
    ),
    "admin_rate_events": ("local", "per-principal rate limiting of admin calls, across guilds"),
    "audit_log": (
        "local",
        "guild_id is NULL for global actions (token revocation, imports before a guild exists); append-only, "
        "read by admins through indexed guild filters",
    ),
    "jobs": ("local", "the job queue is claimed by any worker with SKIP LOCKED; one queue on the coordinator"),
    "job_payloads": ("local", "the body of a job, deleted with it (foreign key to jobs, local to local)"),
}

# Distributed tables whose keys are not yet guild-first, with what remains to be done. Checked like every other
# table; a violation on a listed table is reported as "known" and does not fail the run. Empty it as tables are
# rekeyed: a listed table that no longer violates anything is itself reported, so the list cannot go stale.
KNOWN_EXCEPTIONS: dict[str, str] = {
    # The achievement catalog: templates point at a category, rarity and series with ON DELETE SET NULL. Made
    # composite, that would also null the template's guild_id; PostgreSQL 15's `SET NULL (column)` fixes it, so
    # these are rekeyed to (guild_id, id) with composite foreign keys once PostgreSQL 14 is no longer supported.
    "achievement_categories": "primary key (id) to become (guild_id, id)",
    "achievement_rarities": "primary key (id) to become (guild_id, id)",
    "achievement_series": "primary key (id) to become (guild_id, id)",
    "achievement_templates": "the three catalog foreign keys to become (guild_id, x_id) with ON DELETE SET NULL (x_id)",
}


@dataclass(frozen=True)
class Key:
    """A primary key, unique constraint or unique index; `None` in `columns` stands for an expression."""

    name: str
    kind: Literal["primary key", "unique constraint", "unique index"]
    columns: tuple[str | None, ...]


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from `columns` of its table to `ref_columns` of `ref_table` (same order)."""

    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    """What the rules need to know about one table (partitions are folded into their parent)."""

    name: str
    columns: tuple[str, ...]
    keys: tuple[Key, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()


@dataclass(frozen=True)
class Report:
    """Violations that fail the run, and those on tables listed in `KNOWN_EXCEPTIONS`."""

    violations: list[str] = field(default_factory=list)
    known: list[str] = field(default_factory=list)


def _role(table: Table, global_tables: Mapping[str, tuple[Role, str]]) -> str:
    if table.name in global_tables:
        return global_tables[table.name][0]
    return "distributed"


def _table_violations(
    table: Table, tables: Mapping[str, Table], global_tables: Mapping[str, tuple[Role, str]]
) -> list[str]:
    problems: list[str] = []
    role = _role(table, global_tables)
    if role == "distributed":
        if DISTRIBUTION_COLUMN not in table.columns:
            return [
                f"{table.name}: has no {DISTRIBUTION_COLUMN} column and is not listed in GLOBAL_TABLES "
                "(add the column, or list it as a reference or local table with the reason)"
            ]
        if not any(key.kind == "primary key" for key in table.keys):
            problems.append(f"{table.name}: has no primary key (a distributed table needs one starting with guild_id)")
        for key in table.keys:
            if not key.columns or key.columns[0] != DISTRIBUTION_COLUMN:
                shown = ", ".join(c if c is not None else "<expression>" for c in key.columns)
                problems.append(
                    f"{table.name}: {key.kind} {key.name} ({shown}) does not start with {DISTRIBUTION_COLUMN}"
                )
    for fk in table.foreign_keys:
        target = tables.get(fk.ref_table)
        target_role = _role(target, global_tables) if target is not None else "missing"
        label = f"{table.name}: foreign key {fk.name} ({', '.join(fk.columns)}) -> {fk.ref_table}"
        if role == "distributed" and target_role == "distributed":
            pairs = list(zip(fk.columns, fk.ref_columns, strict=True))
            if (DISTRIBUTION_COLUMN, DISTRIBUTION_COLUMN) not in pairs:
                problems.append(f"{label} does not pair guild_id with guild_id (not co-located)")
        elif role == "distributed" and target_role == "local":
            problems.append(f"{label}: a distributed table cannot reference a local table")
        elif role in ("reference", "local") and target_role == "distributed":
            problems.append(f"{label}: a {role} table cannot reference a distributed table")
        elif role == "reference" and target_role == "local":
            problems.append(f"{label}: a reference table cannot reference a local table")
        elif target_role == "missing":
            problems.append(f"{label}: the referenced table is not in the catalog")
    return problems


def check(
    tables: Sequence[Table],
    global_tables: Mapping[str, tuple[Role, str]] = GLOBAL_TABLES,
    known_exceptions: Mapping[str, str] = KNOWN_EXCEPTIONS,
) -> Report:
    """Apply the distribution rules to a catalog description; pure, so it is unit-tested without a database."""
    by_name = {table.name: table for table in tables}
    report = Report()
    for name in sorted(global_tables):
        if name not in by_name:
            report.violations.append(f"{name}: listed in GLOBAL_TABLES but not in the schema (remove it)")
    for name in sorted(known_exceptions):
        if name in global_tables:
            report.violations.append(f"{name}: listed both as a global table and as a known exception")
    for table in sorted(tables, key=lambda t: t.name):
        problems = _table_violations(table, by_name, global_tables)
        if table.name in known_exceptions:
            if problems:
                report.known.extend(problems)
            else:
                report.violations.append(f"{table.name}: listed in KNOWN_EXCEPTIONS but breaks no rule (remove it)")
        else:
            report.violations.extend(problems)
    return report


# ---- reading the catalog ----------------------------------------------------------------------------------------

_TABLES_SQL = """
SELECT c.oid, c.relname,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname
"""

# Primary keys, unique constraints and foreign keys, with their columns in key order.
_CONSTRAINTS_SQL = """
SELECT con.conrelid, con.conname, con.contype::text AS contype, ref.relname AS ref_table,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.pos) AS columns,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.pos) AS ref_columns
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class ref ON ref.oid = con.confrelid
WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f') AND NOT c.relispartition AND con.conparentid = 0
ORDER BY con.conname
"""

# Unique indexes that back no constraint (partial or expression ones included); 0 in indkey is an expression.
_UNIQUE_INDEXES_SQL = """
SELECT i.indrelid, ic.relname AS name,
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(num, pos)
             LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             WHERE k.pos <= i.indnkeyatts ORDER BY k.pos) AS columns
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND i.indisunique AND NOT c.relispartition
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.conrelid = i.indrelid)
ORDER BY ic.relname
"""


async def read_catalog(dsn: str, schema: str = "public") -> list[Table]:
    """Describe every table of `schema` (partitioned tables once, by their parent) from pg_catalog."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        table_rows = await conn.fetch(_TABLES_SQL, schema)
        constraint_rows = await conn.fetch(_CONSTRAINTS_SQL, schema)
        index_rows = await conn.fetch(_UNIQUE_INDEXES_SQL, schema)
    finally:
        await conn.close()
    keys: dict[int, list[Key]] = {}
    fks: dict[int, list[ForeignKey]] = {}
    for row in constraint_rows:
        if row["contype"] == "f":
            fks.setdefault(row["conrelid"], []).append(
                ForeignKey(row["conname"], tuple(row["columns"]), row["ref_table"], tuple(row["ref_columns"]))
            )
        else:
            kind: Literal["primary key", "unique constraint"] = (
                "primary key" if row["contype"] == "p" else "unique constraint"
            )
            keys.setdefault(row["conrelid"], []).append(Key(row["conname"], kind, tuple(row["columns"])))
    for row in index_rows:
        keys.setdefault(row["indrelid"], []).append(Key(row["name"], "unique index", tuple(row["columns"])))
    return [
        Table(row["relname"], tuple(row["columns"]), tuple(keys.get(row["oid"], ())), tuple(fks.get(row["oid"], ())))
        for row in table_rows
    ]


def main(argv: Sequence[str]) -> int:
    """Check the database named on the command line (or by DATABASE_URL); 0 when distributable, 1 otherwise."""
    url = argv[1] if len(argv) > 1 else os.environ.get("DATABASE_URL", "")
    if not url:
        print("usage: check_distributable.py DATABASE_URL (or set DATABASE_URL)", file=sys.stderr)
        return 2
    from synapse_async.db.urls import to_asyncpg_dsn

    tables = asyncio.run(read_catalog(to_asyncpg_dsn(url)))
    report = check(tables)
    for line in report.known:
        print(f"known (KNOWN_EXCEPTIONS): {line}")
    for line in report.violations:
        print(f"VIOLATION: {line}")
    if report.violations:
        print(f"{len(report.violations)} violation(s): the schema cannot be distributed by guild_id as it is")
        return 1
    distributed = [t.name for t in tables if t.name not in GLOBAL_TABLES]
    print(
        f"ok: {len(distributed)} distributed tables, {len(tables) - len(distributed)} global "
        f"({len(report.known)} known exception(s) remaining)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
