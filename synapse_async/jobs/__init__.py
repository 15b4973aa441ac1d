"""Background jobs (SPEC §23.2): queued per (guild, kind), claimed by the owning process, re-runnable."""
