"""Slash commands (SPEC §17) as lightbulb 3 `Loader` extensions, plus the shared framework (checks, errors).

One module per command group, each defining a module-level `loader`: `member` (what every member uses), `admin`
(catalogue and economy tools for admins) and `season`. A new command goes into the module of its group (or a new
module listed here) as a class-based `lightbulb.SlashCommand` that gets its services through lightbulb's DI.
"""

# Extension modules the runtime loads into the lightbulb client.
EXTENSIONS: tuple[str, ...] = (
    "synapse_async.bot.commands.member",
    "synapse_async.bot.commands.admin",
    "synapse_async.bot.commands.season",
)
