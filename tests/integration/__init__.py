"""Real parts: the embedded PostgreSQL, the real hikari client against the Discord simulator, subprocesses."""
