"""Import memory benchmark (SPEC §20.1: memory for one 20 MiB import < 200 MB; issue 21: 50 parallel 20 MiB uploads
stayed ≤ 200 MB above idle).

    .venv/bin/python bench/imports.py [--uploads 50] [--mib 20] [--job]

The app runs in a CHILD process (real runtime: simulator process, fresh database, aiohttp server, job runner idle)
so that the uploading client's own buffers are not counted; this process builds one document of `--mib` MiB in
our own format (~160,000 members per 20 MiB) and measures the child's resident set from /proc:

1. idle: the child's RSS once the app is up (the baseline of this run); its peak counter is then reset
   (`/proc/<pid>/clear_refs`), so each phase's peak (`VmHWM`) is that phase's alone;
2. `--uploads` parallel uploads of the document by one admin, half dry runs and half imports, all at once: the
   statuses (200 dry run, 202 queued, 409 import active, 429 slots busy) and the peak above idle;
3. one dry run alone (parse + plan of the whole document): its peak above idle;
4. with `--job`: the queued import run by the runner for `--job-seconds` (document parsed, entries held, batches
   applied), then cancelled (all 141,769 members take many minutes on a small machine): its peak above idle.

The last line is machine-readable: `RESULT idle_mb=… uploads_peak_mb=… dry_run_peak_mb=… [job_peak_mb=…]`, each
peak given above idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_WORKLOAD, app_env, fresh_database, start_simulator

GUILD = 100000000000000001  # the sandbox guild
FIRST_USER = 300000000000000000


def _status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid` in MiB."""
    out: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) / 1024
    return out


def _reset_peak(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset the peak resident set to the current one


def build_document(mib: float) -> bytes:
    """Our own export format with as many members as fit in `mib` MiB (each row with every field)."""
    limit = int(mib * 2**20)
    head = b'{"format": "synapse-members", "version": 1, "guild_id": "%d", "members": [' % GUILD
    rows: list[bytes] = []
    size = len(head) + 2
    i = 0
    while True:
        row = (
            b'{"user_id": "%d", "xp": %d, "gold": %d, "lifetime_stars": %d, "github_username": "user-%d",'
            b' "achievements": [], "left": false}' % (FIRST_USER + i, 1000 + i % 50_000, i % 100, i % 7, i)
        )
        if size + len(row) + 1 > limit:
            break
        rows.append(row)
        size += len(row) + 1
        i += 1
    return head + b",".join(rows) + b"]}"


# --- the app process ---------------------------------------------------------------------------------------------


async def serve(args: argparse.Namespace) -> None:
    from synapse_async.config import load_config
    from synapse_async.obs.logging import configure_logging
    from synapse_async.runtime import Runtime

    configure_logging(level="WARNING")
    async with fresh_database("bench_import") as url:
        sim, info = await start_simulator(args.workload)
        env = {**app_env(info, url), "JOB_POLL_SECONDS": "3600", "ADMIN_RATE_LIMIT_PER_MINUTE": "10000"}
        rt = Runtime(load_config(env))
        try:
            await rt.start()
            assert rt.api is not None
            assert rt.jobs is not None
            token = rt.api.codec.issue_service("bench-import", [GUILD], ttl=3600, now=rt.api.now())
            print(json.dumps({"port": rt.http_port, "token": token, "pid": os.getpid()}), flush=True)
            loop = asyncio.get_running_loop()
            while (command := (await loop.run_in_executor(None, sys.stdin.readline)).strip()) not in ("", "quit"):
                applied = None
                if command.startswith("run-job"):
                    applied = await _run_job(rt, float(command.split()[1]))
                print(json.dumps({"done": command, "applied": applied}), flush=True)
        finally:
            await rt.shutdown()
            sim.terminate()
            await sim.wait()


async def _run_job(rt: Any, seconds: float) -> int | None:
    """Run the queued import; after `seconds`, cancel it (it stops at its next heartbeat, between batches, and
    reports what it applied). The members applied."""
    from sqlalchemy import text

    poll = asyncio.create_task(rt.jobs.poll())
    done, _ = await asyncio.wait({poll}, timeout=seconds)
    if not done:
        async with rt.components.db.sessions.begin() as s:
            await s.execute(
                text(
                    "UPDATE jobs SET status = 'cancelled', finished_at = now()"
                    " WHERE kind = 'import' AND status = 'running'"
                )
            )
        await poll
    async with rt.components.db.sessions() as s:
        row = (await s.execute(text("SELECT result FROM jobs WHERE kind = 'import'"))).first()
    return None if row is None or row.result is None else int(row.result["members_changed"])


# --- the client --------------------------------------------------------------------------------------------------


async def _sample_peak(pid: int, stop: asyncio.Event) -> float:
    """Current RSS sampled every 20 ms (a cross-check of VmHWM); the largest seen."""
    peak = 0.0
    while not stop.is_set():
        peak = max(peak, _status(pid)["VmRSS"])
        await asyncio.sleep(0.02)
    return peak


async def _phase(pid: int, work: Any) -> tuple[Any, float]:
    """Run `work`; the child's peak RSS during it (MiB)."""
    _reset_peak(pid)
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_peak(pid, stop))
    result = await work
    stop.set()
    sampled = await sampler
    return result, max(sampled, _status(pid)["VmHWM"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", type=Path, default=DEFAULT_WORKLOAD)
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--mib", type=float, default=20.0)
    parser.add_argument("--job", action="store_true", help="also run the queued import")
    parser.add_argument("--job-seconds", type=float, default=60.0, help="then cancel it (the whole takes minutes)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args)
        return

    document = build_document(args.mib)
    members = document.count(b'"user_id"')
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--workload", str(args.workload),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert child.stdin is not None
    assert child.stdout is not None

    async def ask(command: str) -> dict[str, Any]:
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(command.encode() + b"\n")
        await child.stdin.drain()
        answer: dict[str, Any] = json.loads(await child.stdout.readline())
        return answer

    try:
        info = json.loads(await asyncio.wait_for(child.stdout.readline(), 300))
        pid = int(info["pid"])
        url = f"http://127.0.0.1:{info['port']}/api/admin/guilds/{GUILD}/members/import"
        headers = {"Authorization": f"Bearer {info['token']}", "Content-Type": "application/json"}
        await asyncio.sleep(2)  # let start-up work (guild sync, cache load) settle
        idle = _status(pid)["VmRSS"]
        print(f"document: {len(document) / 2**20:.1f} MiB, {members:,} members")
        print(f"idle (app up, baseline of this run): {idle:.0f} MB")

        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def upload(dry_run: bool) -> int:
                params = {"dry_run": "true" if dry_run else "false", "mode": "add"}
                async with http.post(url, data=document, headers=headers, params=params) as resp:
                    await resp.read()
                    return resp.status

            started = time.monotonic()
            statuses, peak = await _phase(pid, asyncio.gather(*(upload(i % 2 == 0) for i in range(args.uploads))))
            took = time.monotonic() - started
            counts = Counter(statuses)
            print(
                f"{args.uploads} parallel uploads ({took:.1f} s): statuses {dict(sorted(counts.items()))};"
                f" peak {peak:.0f} MB = {peak - idle:+.0f} MB above idle"
            )
            uploads_peak = peak - idle
            dry, peak = await _phase(pid, upload(True))
            print(f"one dry run alone (status {dry}): peak {peak:.0f} MB = {peak - idle:+.0f} MB above idle")
            dry_peak = peak - idle
        result = f"RESULT idle_mb={idle:.1f} uploads_peak_mb={uploads_peak:.1f} dry_run_peak_mb={dry_peak:.1f}"
        if args.job:
            if counts.get(202) != 1:
                raise RuntimeError(f"expected exactly one queued import, got {counts.get(202)}")
            started = time.monotonic()
            answer, peak = await _phase(pid, ask(f"run-job {args.job_seconds}"))
            print(
                f"the queued import ({answer['applied']:,} of {members:,} members applied in"
                f" {time.monotonic() - started:.0f} s, cancelled after --job-seconds {args.job_seconds:g}):"
                f" peak {peak:.0f} MB = {peak - idle:+.0f} MB above idle"
            )
            result += f" job_peak_mb={peak - idle:.1f}"
        print(result)
    finally:
        if child.returncode is None:
            with contextlib.suppress(ConnectionError):
                child.stdin.write(b"quit\n")
                await child.stdin.drain()
            await asyncio.wait_for(child.wait(), 120)


if __name__ == "__main__":
    asyncio.run(main())
