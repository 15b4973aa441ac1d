"""The aiohttp HTTP server: probes, public and admin JSON API (SPEC §18–§24). Handlers are thin adapters."""
