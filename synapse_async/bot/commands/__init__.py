"""Slash commands (SPEC §17) as lightbulb 3 `Loader` extensions, plus the shared framework (checks, errors)."""

# Extension modules the runtime loads into the lightbulb client (each defines a module-level `loader`).
EXTENSIONS: tuple[str, ...] = ()
