"""A batch's writes: its table changelog records, and waiting for all it sent.

A batch's input offsets may be committed only once everything it sent and
wrote is acknowledged by the broker (Faust commits offsets without waiting
for its producer, so a crash right after a commit could otherwise lose a
write).

Table writes. The stages write their tables through ``ChangelogTable``
(tables.py): the store in memory changes at once, and the changelog record
is queued here, then sent with the batch's flush as one produce batch per
changelog partition, in the order written. Faust's own path for a table
write (a future, a queue hop through its producer buffer, a send and two
callbacks per record) was the largest cost of a worker outside cxstream's
own code. Anything else written through Faust's buffer is still recorded
and waited for.

Waiting. The Kafka client's flush waits for the produce requests, not
their outcome: a record the broker refused (one over the topic's
``max.message.bytes``, say) would pass, and the batch be acknowledged with
its state lost at the next recovery. ``take()`` waits for each changelog
batch's and each buffered write's own outcome (a failure raises its
error), then for the client's flush, which covers the records the stages
send directly (route, observations, alerts, dead letters), all sent before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

#: (key, value) changelog records of one partition, in order; None deletes.
Records = list[tuple[bytes, bytes | None]]
#: Sends one partition's records; returns the futures of their delivery.
SendRecords = Callable[[str, int, Records], Awaitable[Sequence[asyncio.Future[Any]]]]


class WriteBarrier:
    def __init__(
        self,
        buffer: Any,
        client_flush: Callable[[], Awaitable[None]],
        send_records: SendRecords | None = None,
    ) -> None:
        """``buffer``: Faust's producer buffer (its ``put`` is wrapped);
        ``client_flush``: the Kafka client's flush; ``send_records``: how
        changelog records are sent (needed once ``changelog`` is used)."""
        self._writes: list[asyncio.Future[Any]] = []
        self._records: dict[tuple[str, int], Records] = {}
        self._client_flush = client_flush
        self._send_records = send_records
        # One batch's records are all handed to the client before the next
        # batch's: writes of a key reach the changelog in the order made.
        self._sending = asyncio.Lock()
        put = buffer.put

        def recorded_put(fut: Any) -> None:
            put(fut)
            self._writes.append(fut)

        buffer.put = recorded_put

    def changelog(self, topic: str, partition: int, key: bytes, value: bytes | None) -> None:
        """Queue a changelog record (sent by the next ``take``)."""
        queued = self._records.get((topic, partition))
        if queued is None:
            queued = self._records[topic, partition] = []
        queued.append((key, value))

    @property
    def pending(self) -> int:
        """Writes queued since the last ``take``."""
        return len(self._writes) + sum(map(len, self._records.values()))

    def take(self) -> asyncio.Future[None]:
        """A task that sends the changelog records queued so far and ends
        once they, the buffered writes so far and the records sent so far
        are acknowledged by the broker."""
        writes, self._writes = self._writes, []
        records, self._records = self._records, {}
        return asyncio.ensure_future(self._wait(writes, records))

    async def _wait(
        self, writes: list[asyncio.Future[Any]], records: dict[tuple[str, int], Records]
    ) -> None:
        delivered: list[asyncio.Future[Any]] = list(writes)
        if records:
            if self._send_records is None:
                raise RuntimeError("changelog records queued, but no way to send them")
            async with self._sending:
                for (topic, partition), recs in records.items():
                    delivered.extend(await self._send_records(topic, partition, recs))
        if delivered:
            await asyncio.gather(*delivered)
        await self._client_flush()
