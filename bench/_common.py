"""Shared pieces of the benchmarks: a simulator process loaded with a workload, and replay requests to it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WORKLOAD = ROOT.parent / "shared" / "bench" / "workload-5000.jsonl"


def count_rows(workload: Path) -> int:
    with workload.open(encoding="utf-8") as fh:
        return sum(1 for line in fh if line.strip())


async def start_simulator(workload: Path) -> tuple[asyncio.subprocess.Process, dict[str, str]]:
    """`python -m synapse_async.sandbox --workload …` in its own process; returns it and its URLs/token."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synapse_async.sandbox",
        "--members",
        "0",
        "--workload",
        str(workload),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    info = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
    return proc, info


async def replay(info: dict[str, str], **body: Any) -> dict[str, Any]:
    """Ask the simulator process to dispatch the workload (`rate`, `limit`, `id_offset`)."""
    base = info["api_url"].split("/api/")[0]
    async with aiohttp.ClientSession() as http, http.post(f"{base}/_control/replay", json=body) as resp:
        resp.raise_for_status()
        result: dict[str, Any] = await resp.json()
        return result
