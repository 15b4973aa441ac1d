"""Control endpoints of a simulator running as its own process (`python -m synapse_async.sandbox --workload …`).

Benchmarks and black-box tests drive a simulator in another process through these, so the process under test
shares no event loop with the traffic generator. They live under `/_control/` on the simulator's own port and
exist only in process mode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from aiohttp import web

from synapse_async.sandbox.server import DiscordSimulator
from synapse_async.sandbox.workload import WorkloadRow, replay


def add_control_routes(sim: DiscordSimulator, rows: Sequence[WorkloadRow]) -> None:
    async def replay_workload(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        rate = body.get("rate")
        limit = body.get("limit")
        offset = body.get("id_offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset < 4096:
            return web.json_response({"error": "id_offset must be an integer 0..4095"}, status=400)
        if rate is not None and (not isinstance(rate, int | float) or isinstance(rate, bool) or rate <= 0):
            return web.json_response({"error": "rate must be a positive number or null"}, status=400)
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            return web.json_response({"error": "limit must be a non-negative integer or null"}, status=400)
        selected = rows[:limit] if limit is not None else rows
        result = await replay(sim.events, selected, rate=float(rate) if rate is not None else None, id_offset=offset)
        return web.json_response(result)

    async def state(_request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(sim.state()), content_type="application/json")

    sim.app.router.add_post("/_control/replay", replay_workload)
    sim.app.router.add_get("/_control/state", state)
