"""The pipeline's intake side: the `EventSink` the normalizer hands events to.

`IntakeCounter` is the sink used until the reward pipeline consumes events (it only counts them per type, so
`/health` shows that the gateway side is alive); tests use `RecordingSink` to see exactly what was normalized.
Both are bounded: the counter keeps integers, the recorder keeps at most `limit` events.
"""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from synapse_async.domain.events import GatewayDomainEvent


class IntakeCounter:
    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    def submit(self, event: GatewayDomainEvent) -> None:
        self.received[type(event).__name__] += 1

    def snapshot(self) -> dict[str, Any]:
        return {"received": sum(self.received.values()), "by_type": dict(self.received)}


class RecordingSink:
    def __init__(self, limit: int = 100_000) -> None:
        self.events: deque[GatewayDomainEvent] = deque(maxlen=limit)

    def submit(self, event: GatewayDomainEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]
