"""The admin API of SPEC §20, one route table (`api = Api()`) per resource: `platform` (the caller's guilds,
settings, audit), `config` (reward rules, explain, level roles, import/export), `achievements` (templates, earners,
grant/revoke, categories, rarities, series), `awards`, `seasons`, `members`, `logs` and `lake` (event lake and jobs);
`common` holds what they share. A new admin endpoint goes into the module of its resource, declared with
`Api.route`; `api/routes.py` combines the tables. `level_role_guard` is no table: the "safe roles only" check and
the `dry_run` preview every level-role change (reward table or mode) goes through."""
