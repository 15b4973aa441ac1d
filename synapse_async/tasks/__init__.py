"""Supervised background tasks (SPEC §23.1)."""
