"""The reward pipeline (SPEC §8): per-guild ordered lanes from normalized events to committed rows."""
