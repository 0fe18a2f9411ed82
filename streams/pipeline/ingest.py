"""Stage 1: where an event enters. Size check, decode, validate, route.

Input topics are read as raw bytes, so Faust never drops a record it cannot
decode: every record ends here as *forwarded* (to the route topic, keyed by
ticket or event id) or *dead-lettered* with a reason. Nothing else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streams.domain.model import Rejection, SurveyResponse, TicketEvent
from streams.domain.validation import decode
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.pipeline.envelope import Provenance
from streams.pipeline.ratelimit import RateLimitedLog
from streams.settings import Settings

log = logging.getLogger(__name__)

SendRoute = Callable[[bytes, bytes, list[tuple[str, bytes]]], Awaitable[Any]]
SendDeadletter = Callable[[Provenance, bytes | None, str, str], Awaitable[Any]]


def route_key(event: TicketEvent | SurveyResponse) -> bytes:
    """Ticket events and surveys that name a ticket meet that ticket's state;
    other surveys are keyed by their own event id (for deduplication)."""
    if event.ticket_id is not None:
        return b"t:" + event.ticket_id.encode()
    return b"e:" + event.event_id.encode()


class Ingest:
    """Validates one input record and sends it on, or to the dead-letter topic."""

    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics,
        send_route: SendRoute,
        send_deadletter: SendDeadletter,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._send_route = send_route
        self._send_deadletter = send_deadletter
        self._rejections = RateLimitedLog(log, interval_s=10.0)

    async def handle(self, prov: Provenance, value: bytes | None) -> None:
        result = decode(
            value,
            "tickets" if prov.source == "tickets" else "surveys",
            prov.received_us,
            dimensions=self.settings.dimensions,
        )
        if isinstance(result, Rejection):
            self.metrics.rejected(prov.source, result.reason)
            # One concise line per reason at a rate limit; never the payload.
            self._rejections.warning(
                (prov.source, result.reason),
                "rejected %s record (%s): %s [%s/%d@%d]",
                prov.source,
                result.reason,
                result.detail,
                prov.topic,
                prov.partition,
                prov.offset,
            )
            await self._send_deadletter(prov, value, result.reason, result.detail)
            return
        # Lateness is counted by the ticket stage, once the event is known
        # not to be a duplicate (a duplicate has no effect, not even there).
        assert value is not None  # a decoded event had bytes
        await self._send_route(route_key(result), value, prov.headers())
