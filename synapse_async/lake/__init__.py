"""The event lake beyond capture (SPEC §15, §20): the read side and the data-source switches for the admin API."""
