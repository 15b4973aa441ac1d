"""Configuration cache and the supervised LISTEN connection that keeps it fresh (SPEC §16)."""
