"""Member import and export (SPEC §20.1): document formats (pure) and the `import` job."""
