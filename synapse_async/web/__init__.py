"""Member web pages (SPEC §28): the JSON API's second face, rendered on the server from the same calls."""
