"""The package's layers (docs/architecture.md) hold: no module imports from a layer above its own.

The contracts are import-linter's, declared in pyproject.toml; `make lint` runs them too. Running them here means the
test suite alone fails on an upward import (a reward rule reaching into the cache, a service into the runtime).
Static analysis of the source only: no I/O beyond reading the package's files.
"""

from __future__ import annotations

from pathlib import Path

from importlinter.cli import lint_imports

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_every_import_linter_contract_is_kept() -> None:
    assert lint_imports(config_filename=str(PYPROJECT), no_cache=True, no_logo=True) == 0
