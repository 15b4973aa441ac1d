"""Discord side: gateway client, normalization of hikari events into domain events, guild sync, commands."""
