"""A fresh worker reads its tables' changelogs in bulk before Faust starts.

Faust recovers a table by replaying its changelog one record at a time
through its consumer and its recovery loop, a few tens of microseconds of
bookkeeping per record: 50 s for the state of 1M events. A new process has
nothing in memory, so it would replay every partition from the beginning.
Instead, before the app starts, every partition of each table's changelog is
read with a plain consumer, in batches, and applied to the table's store as
Faust applies a changelog (the last value of a key wins; a tombstone deletes
it). The store then reports the last offset read as the partition's
persisted offset, and Faust's recovery reads only what was written after it.

Why this is exact: replaying a partition up to offset M and then from M + 1
on leaves the same data as replaying it whole, and for every partition the
store holds either nothing (no mark) or exactly its prefix up to its mark.
At each assignment, until the first recovery completes, the partitions this
worker was not given are dropped with their marks (their owner has them; if
one comes here later, Faust replays it whole). After a completed recovery
the marks are gone and Faust tracks its offsets itself. If the bulk read
fails at all, everything it loaded is dropped and Faust replays as usual.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping, Set
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.stores.memory import Store as MemoryStore
from faust.types import TP

log = logging.getLogger(__name__)

#: Longest a bulk read may take before it is abandoned (Faust then replays).
PRELOAD_TIMEOUT_S = 600.0
MAX_RECORDS_SETTING = "--preload-max-records / CX_PRELOAD_MAX_RECORDS"


class PreloadStore(MemoryStore[bytes, bytes]):
    """Faust's in-memory store, which may start with a bulk-read prefix of
    its changelog (``put_loaded``, ``marks``)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        #: changelog partition -> offset of the last record applied in bulk
        self.marks: dict[int, int] = {}

    def put_loaded(self, partition: int, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.data.pop(key, None)
            self._key_partition.pop(key, None)
        else:
            self.data[key] = value
            self._key_partition[key] = partition

    def clear_loaded(self) -> None:
        """Forget everything (a fresh store holds nothing else)."""
        self.data.clear()
        self._key_partition.clear()
        self.marks.clear()

    def drop(self, partitions: Set[int]) -> None:
        """Forget what was loaded for these partitions, data and marks."""
        if not partitions:
            return
        for key in [k for k, p in self._key_partition.items() if p in partitions]:
            self.data.pop(key, None)
            del self._key_partition[key]
        for p in partitions:
            self.marks.pop(p, None)

    def persisted_offset(self, tp: TP) -> int | None:
        if tp.topic != self.table.changelog_topic.get_topic_name():
            return None
        return self.marks.get(tp.partition)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        if not self.marks:
            return
        topic = self.table.changelog_topic.get_topic_name()
        assignor = self.app.assignor
        mine = {
            tp.partition
            for tp in (*assignor.assigned_actives(), *assignor.assigned_standbys())
            if tp.topic == topic
        }
        self.drop(set(self.marks) - mine)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self.marks.clear()


class _TooManyRecordsError(Exception):
    pass


@dataclass(frozen=True)
class Preloaded:
    records: int
    partitions: int
    seconds: float


def preload(
    bootstrap: str,
    client_kwargs: Mapping[str, Any],
    stores: Mapping[str, PreloadStore],
    partitions: Mapping[str, int],
    max_records: int,
    timeout_s: float = PRELOAD_TIMEOUT_S,
) -> Preloaded | None:
    """Read every partition of each changelog topic (``stores``: topic ->
    its table's store; ``partitions``: topic -> its partition count, for the
    topics that exist) into its store, in a thread of its own with its own
    event loop (Faust's is not running yet). Every worker reads every
    partition and keeps only its own at its first assignment, so changelogs
    holding more than ``max_records`` records are left to Faust (a worker
    of a large group would hold the whole state for a moment). None when it
    failed or was left: then nothing was loaded."""
    result: list[Preloaded] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(
                asyncio.run(
                    asyncio.wait_for(
                        _read(bootstrap, client_kwargs, stores, partitions, max_records), timeout_s
                    )
                )
            )
        except BaseException as exc:  # reported below; the worker goes on without it
            error.append(exc)

    thread = threading.Thread(target=run, name="cx-preload", daemon=True)
    thread.start()
    thread.join()
    if error and isinstance(error[0], _TooManyRecordsError):
        log.info("%s: Faust replays the changelogs record by record", error[0])
        return None
    if error or not result:
        for store in stores.values():
            store.clear_loaded()
        log.warning(
            "reading the changelogs in bulk failed (%s); Faust replays them record by record",
            repr(error[0]) if error else "no result",
        )
        return None
    return result[0]


async def _read(
    bootstrap: str,
    client_kwargs: Mapping[str, Any],
    stores: Mapping[str, PreloadStore],
    partitions: Mapping[str, int],
    max_records: int,
) -> Preloaded:
    t0 = time.monotonic()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **client_kwargs,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for topic, n in partitions.items() for p in range(n)]
        if not tps:
            return Preloaded(0, 0, time.monotonic() - t0)
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        held = sum(end[tp] - begin[tp] for tp in tps)
        if held > max_records:
            raise _TooManyRecordsError(
                f"the changelogs hold {held} records, more than {MAX_RECORDS_SETTING} "
                f"= {max_records}"
            )
        todo = {tp for tp in tps if end[tp] > begin[tp]}
        for tp in todo:
            consumer.seek(tp, begin[tp])
        consumer.pause(*(tp for tp in tps if tp not in todo))
        records = 0
        while todo:
            batches = await consumer.getmany(*todo, timeout_ms=500, max_records=50_000)
            for tp, batch in batches.items():
                store, stop, put = stores[tp.topic], end[tp], stores[tp.topic].put_loaded
                last = -1
                for rec in batch:
                    if rec.offset >= stop:
                        break
                    put(tp.partition, rec.key, rec.value)
                    last = rec.offset
                    records += 1
                if last >= 0:
                    store.marks[tp.partition] = last
            for tp in list(todo):
                if await consumer.position(tp) >= end[tp]:
                    todo.discard(tp)
                    consumer.pause(tp)
        return Preloaded(records, len(tps), time.monotonic() - t0)
    finally:
        await consumer.stop()
