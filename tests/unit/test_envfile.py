"""The `.env` reader (SPEC §30): the format `.env.example` documents, errors by line, the environment on top."""

from __future__ import annotations

from pathlib import Path

import pytest

from synapse_async.envfile import EnvFileError, layered_environment, parse_env_text


def test_format_of_env_example() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=value",
            "export EXPORTED=1",
            "SPACED = spaced value  ",
            "SINGLE='keeps $HOME and \\n as written'",
            'DOUBLE="line\\nbreak \\"quoted\\""',
            "URL=https://example.com/#frag",
            "COMMENTED=value # trailing comment",
            "EMPTY=",
            "PLAIN=later wins",
        ]
    )
    assert parse_env_text(text) == {
        "PLAIN": "later wins",
        "EXPORTED": "1",
        "SPACED": "spaced value",
        "SINGLE": "keeps $HOME and \\n as written",
        "DOUBLE": 'line\nbreak "quoted"',
        "URL": "https://example.com/#frag",
        "COMMENTED": "value",
        "EMPTY": "",
    }


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not a setting", "expected KEY=value"),
        ("1ABC=x", "expected KEY=value"),
        ("A='open", "quotes"),
        ('A="x', "quotes"),
    ],
)
def test_unreadable_line_names_its_number(line: str, reason: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env_text(f"OK=1\n{line}\n", ".env")
    assert caught.value.line == 2
    assert reason in str(caught.value) and ".env, line 2" in str(caught.value)


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FROM_FILE=file\nBOTH=file\n", encoding="utf-8")
    merged = layered_environment({"BOTH": "env", "ONLY_ENV": "env"}, tmp_path)
    assert merged == {"FROM_FILE": "file", "BOTH": "env", "ONLY_ENV": "env"}


def test_no_file_is_the_environment(tmp_path: Path) -> None:
    assert layered_environment({"A": "1"}, tmp_path) == {"A": "1"}
