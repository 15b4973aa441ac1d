"""Configuration parsing (SPEC §4): every problem reported at once, secrets masked, README table kept true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_async.config import VARIABLES, ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_parse_in_sandbox() -> None:
    cfg = load_config({})
    assert cfg.sandbox and cfg.embedded_database
    assert cfg.db_pool_size == 10 and cfg.db_pool_timeout_seconds == 5.0
    assert cfg.jwt_secret_generated and len(cfg.jwt_secret) >= 32


def test_all_problems_reported_together_and_secrets_masked() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "DB_POOL_SIZE": "0",
                "LOG_FORMAT": "xml",
                "DISCORD_TOKEN": "abc.def.ghi",
                "JWT_SECRET": "changeme123",
                "SHARD_IDS": "0-3",
            }
        )
    names = [p.variable for p in info.value.problems]
    assert set(names) == {"DB_POOL_SIZE", "LOG_FORMAT", "JWT_SECRET", "SHARD_IDS"}
    assert "changeme123" not in str(info.value)
    assert "***" in next(p.render() for p in info.value.problems if p.variable == "JWT_SECRET")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SHARD_IDS": "0,4", "SHARD_COUNT": "4"}, "SHARD_IDS"),
        ({"PIPELINE_CONCURRENCY": "20", "DB_POOL_SIZE": "10"}, "PIPELINE_CONCURRENCY"),
        ({"DISCORD_REDIRECT_URI": "https://x.example/callback"}, "DISCORD_REDIRECT_URI"),
        ({"JWT_SECRET": "a" * 40}, "JWT_SECRET"),
        ({"DB_AUTO_MIGRATE": "yes"}, "DB_AUTO_MIGRATE"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"OAUTH_SUCCESS_URL": "https://evil.example/"}, "OAUTH_SUCCESS_URL"),
    ],
)
def test_single_problem_is_named(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env)
    assert [p.variable for p in info.value.problems] == [variable]


def test_jwt_secret_required_outside_sandbox() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"DISCORD_TOKEN": "MTA.x.y"})
    assert [p.variable for p in info.value.problems] == ["JWT_SECRET"]


def test_shard_ranges() -> None:
    assert load_config({"SHARD_IDS": "1-3", "SHARD_COUNT": "4"}).shard_ids == (1, 2, 3)
    assert load_config({"SHARD_IDS": "0,2", "SHARD_COUNT": "4"}).shard_ids == (0, 2)


def test_check_config_exits_2_naming_both_variables() -> None:
    env = {k: v for k, v in os.environ.items() if k not in {v.name for v in VARIABLES}}
    env.update({"DB_POOL_SIZE": "many", "HTTP_PORT": "99999"})
    proc = subprocess.run(
        [sys.executable, "-m", "synapse_async", "check-config"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "DB_POOL_SIZE" in proc.stderr and "HTTP_PORT" in proc.stderr


def test_readme_documents_exactly_the_variables_in_code() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, flags=re.MULTILINE))
    assert documented == {v.name for v in VARIABLES}
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    in_example = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    in_example = {n for n in in_example if not n.startswith("POSTGRES_")}  # compose-only variables
    assert in_example == {v.name for v in VARIABLES}


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app@db.internal/synapse?password=hunter2",
        "postgresql://app@db.internal/synapse?sslmode=require&PASSWORD=hunter2&x=1",
        "postgresql://app:hunter2@db.internal/synapse",
        "postgresql://app:hunter2@db.internal/synapse?sslpassword=hunter2",
    ],
)
def test_database_url_passwords_are_masked_in_every_form(url: str) -> None:
    from synapse_async.config import mask

    masked = mask("DATABASE_URL", url)
    assert masked is not None and "hunter2" not in masked and "db.internal/synapse" in masked
    with pytest.raises(ConfigError) as info:
        load_config({"DATABASE_URL": url, "DB_POOL_SIZE": "0"})
    assert "hunter2" not in str(info.value)


def test_sandbox_listens_on_loopback_unless_told_otherwise() -> None:
    assert load_config({}).http_host == "127.0.0.1"
    assert load_config({"HTTP_HOST": "0.0.0.0"}).http_host == "0.0.0.0"
    production = load_config({"DISCORD_TOKEN": "a.b.c", "JWT_SECRET": "k" * 20 + "Q9x" * 10})
    assert production.http_host == "0.0.0.0"


def test_sandbox_run_with_an_external_database_needs_the_explicit_opt_in() -> None:
    from synapse_async.config import run_problems

    url = "postgresql://app:hunter2@db.internal/synapse"
    (problem,) = run_problems(load_config({"DATABASE_URL": url}))
    assert problem.variable == "DATABASE_URL" and "SANDBOX_ALLOW_EXTERNAL_DATABASE" in problem.render()
    assert "hunter2" not in problem.render()
    assert run_problems(load_config({"DATABASE_URL": url, "SANDBOX_ALLOW_EXTERNAL_DATABASE": "true"})) == []
    assert run_problems(load_config({})) == []  # embedded database
    token = {"DISCORD_TOKEN": "a.b.c", "JWT_SECRET": "k" * 20 + "Q9x" * 10}
    assert run_problems(load_config({"DATABASE_URL": url, **token})) == []
