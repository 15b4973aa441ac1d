"""Database access: engine and pool, typed models, migrations, NOTIFY helper, embedded server."""
