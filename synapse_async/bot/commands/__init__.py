"""Slash commands (SPEC §17): one lightbulb 3 `Loader` module per command group, nothing else.

The gateway loads EVERY public module of this package (`Client.load_extensions_from_package`), so adding a command
group is adding a module here that defines a module-level `loader = lightbulb.Loader()`; modules whose name starts
with `_` are skipped. The shared framework (admin check, deferral bookkeeping, error replies) is `bot/framework.py`;
services come by lightbulb DI (`economy: Economy = lightbulb.di.INJECTED`).
"""
