"""Pure logic: no database, no network, no subprocess, no files; fast and deterministic."""
