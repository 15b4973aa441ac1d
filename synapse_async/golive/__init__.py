"""Going live (SPEC §30): the tools that take an operator from the sandbox to a real Discord application —
`invite-url` (the bot's invite link) and `doctor` (what a live configuration still lacks, and how to fix it)."""
