"""Rewrite the README's environment table and `.env.example` from `synapse_async.config.VARIABLES`."""

from __future__ import annotations

from pathlib import Path

from synapse_async.config import env_example, markdown_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    start = text.index("| Variable | Default | Meaning |")
    end = text.index("\n\n", start)
    readme.write_text(text[:start] + markdown_table() + text[end:], encoding="utf-8")
    (ROOT / ".env.example").write_text(env_example(), encoding="utf-8")


if __name__ == "__main__":
    main()
