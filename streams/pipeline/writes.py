"""Waiting for a batch's writes: the records it sent and its table writes.

A batch's input offsets may be committed only once everything it sent and
wrote is acknowledged by the broker (Faust commits offsets without waiting
for its producer, so a crash right after a commit could otherwise lose a
write). Table writes do not reach the Kafka client at once: Faust queues
them in its producer buffer, and a task hands them over one at a time.
The client's flush then waits for what it was handed, but passes over a
write that failed (it waits for the batches, not their outcome; Faust only
logs the failure), so the batch would be acknowledged all the same and its
state lost at the next recovery.

``WriteBarrier`` records the buffer's writes as they are queued, and
``take()`` waits for exactly the writes queued so far: each one's delivery
(a write that failed raises its error), then the client's flush, which
covers the records sent directly (route, observations, alerts, dead
letters), all sent before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class WriteBarrier:
    def __init__(self, buffer: Any, client_flush: Callable[[], Awaitable[None]]) -> None:
        """``buffer``: Faust's producer buffer (its ``put`` is wrapped);
        ``client_flush``: the Kafka client's flush."""
        self._writes: list[asyncio.Future[Any]] = []
        self._client_flush = client_flush
        put = buffer.put

        def recorded_put(fut: Any) -> None:
            put(fut)
            self._writes.append(fut)

        buffer.put = recorded_put

    @property
    def pending(self) -> int:
        """Writes queued since the last ``take``."""
        return len(self._writes)

    def take(self) -> asyncio.Future[None]:
        """A task that ends once the writes queued so far, and the records
        sent so far, are acknowledged by the broker."""
        writes, self._writes = self._writes, []
        return asyncio.ensure_future(self._wait(writes))

    async def _wait(self, writes: list[asyncio.Future[Any]]) -> None:
        if writes:
            await asyncio.gather(*writes)
        await self._client_flush()
