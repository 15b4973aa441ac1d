"""The `.env` file of SPEC §30: `KEY=value` lines read from the working directory, under the real environment.

Why our own reader instead of a library: the format we accept is small and documented in `.env.example` (comments,
blank lines, optional `export`, single or double quotes), and a line we cannot read must be a configuration error
naming its line (exit 2), never a silently ignored setting. Variables already in the process environment win, so an
orchestrator's or a shell's value always overrides the file.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

ENV_FILE_NAME = ".env"

_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*?)\s*$")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


class EnvFileError(Exception):
    """A line of the file that is not `KEY=value`; `line` counts from 1."""

    def __init__(self, path: str, line: int, reason: str) -> None:
        super().__init__(f"{path}, line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


_SINGLE = re.compile(r"^'([^']*)'$")
_DOUBLE = re.compile(r'^"((?:[^"\\]|\\.)*)"$')


def _unquote(raw: str, path: str, number: int) -> str:
    if raw[:1] in ("'", '"'):
        match = (_SINGLE if raw[0] == "'" else _DOUBLE).match(raw)
        if match is None:
            raise EnvFileError(path, number, "unterminated or unbalanced quotes")
        if raw[0] == "'":
            return match[1]
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), match[1])
    # Unquoted: a ` #` starts a comment (a `#` inside a value such as a URL fragment stays).
    return re.split(r"\s+#", raw, maxsplit=1)[0].rstrip()


def parse_env_text(text: str, path: str = ENV_FILE_NAME) -> dict[str, str]:
    """Every `KEY=value` of the text, in order; a later line for the same key wins, as in a shell."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise EnvFileError(path, number, "expected KEY=value")
        values[match["key"]] = _unquote(match["value"], path, number)
    return values


def layered_environment(environ: Mapping[str, str], directory: Path | None = None) -> dict[str, str]:
    """The environment the app configures itself from: the `.env` file of `directory` (the working directory by
    default; absent is fine) with the real environment on top. Read once at start, before the event loop runs."""
    path = (directory or Path.cwd()) / ENV_FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return dict(environ)
    except UnicodeDecodeError:
        raise EnvFileError(str(path), 0, "not UTF-8 text") from None
    return {**parse_env_text(text, str(path)), **environ}


SANDBOX_SECRET_FILE = "sandbox-jwt-secret"


def with_sandbox_secret(env: Mapping[str, str]) -> dict[str, str]:
    """Sandbox mode without `JWT_SECRET`: the secret kept beside the embedded data directory, made once (0600).

    A random secret per process made every token from `mint-token` useless against the running sandbox; one kept
    on disk is shared by `run` and `mint-token` in the same directory, and stays only on this machine. Outside
    sandbox mode, or with `JWT_SECRET` set, nothing changes (config validation asks for a real secret).
    """
    if env.get("DISCORD_TOKEN") or env.get("JWT_SECRET"):
        return dict(env)
    path = Path(env.get("EMBEDDED_PG_DIR") or "./.synapse/pg").parent / SANDBOX_SECRET_FILE
    try:
        secret = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another command made it first: use theirs
            return with_sandbox_secret(env)
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secret + "\n")
    return {**dict(env), "JWT_SECRET": secret}
