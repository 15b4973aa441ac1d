# Two commands do all set-up on a fresh machine with only Python 3.11+ and pip:
#   make run   - create .venv, install, start the app (embedded PostgreSQL / Discord simulator when unset)
#   make test  - create .venv, install dev dependencies, run the whole suite against a real PostgreSQL
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

LOCK_FLAGS := --quiet --strip-extras --generate-hashes --allow-unsafe --no-emit-index-url --no-emit-find-links

.PHONY: run test lint format bench install clean env-docs lock outdated

# Installs exactly the locked, hash-checked versions (requirements-dev.lock, made by pip-tools from pyproject.toml),
# then the project itself without dependencies; `pip check` fails if the lock no longer satisfies pyproject.toml.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

# Sandbox members chat by themselves at `make run` (60 events a minute) so the leaderboard page fills while you
# watch; set SANDBOX_ACTIVITY_PER_MINUTE=0 (shell or .env) for a quiet world. Ignored with a DISCORD_TOKEN (no
# simulator). The default is passed only when neither the shell nor .env sets it: the environment beats .env.
RUN_ACTIVITY := $(if $(or $(SANDBOX_ACTIVITY_PER_MINUTE),$(shell grep -Es '^[[:space:]]*(export[[:space:]]+)?SANDBOX_ACTIVITY_PER_MINUTE[[:space:]]*=' .env)),,SANDBOX_ACTIVITY_PER_MINUTE=60)
run: $(STAMP)
	$(RUN_ACTIVITY) $(PY) -m synapse_async run

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

env-docs: $(STAMP)
	$(PY) tools/env_docs.py

# Re-resolve both lockfiles after changing dependencies in pyproject.toml (pip-tools is needed only for this).
lock: $(STAMP)
	$(PY) -m pip install --quiet pip-tools
	$(PY) -m piptools compile $(LOCK_FLAGS) $(LOCK_UPGRADE) -o requirements.lock pyproject.toml
	$(PY) -m piptools compile $(LOCK_FLAGS) $(LOCK_UPGRADE) --extra dev -o requirements-dev.lock pyproject.toml

# What is behind the lock: every locked package (installed in .venv exactly as locked) with a newer release on the
# index. Re-lock to the newest compatible releases with `make lock LOCK_UPGRADE=--upgrade`, then run `make test`.
outdated: $(STAMP)
	$(PY) -m pip list --outdated --format=columns
