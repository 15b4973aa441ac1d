"""The package's layers (docs/architecture.md) hold: no module imports from a layer above its own.

The contracts are import-linter's, declared in pyproject.toml; `make lint` runs them too. Running them here means the
test suite alone fails on an upward import (a reward rule reaching into the cache, a service into the runtime).
It runs as its own process: import-linter configures logging and output for a command line, which must not leak
into the tests that check the app's logging.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_every_import_linter_contract_is_kept() -> None:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout
