"""Pure domain types shared by the bot, the pipeline and the reward core: no I/O, no library objects."""
