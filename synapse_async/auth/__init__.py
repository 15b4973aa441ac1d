"""Authentication of the admin API (SPEC §21): JWTs, principals, live admin checks. No HTTP here."""
