"""A Faust table whose changelog partition is the key's own partition.

Stages write tables once per key per batch (coalesced writes), after the
batch: there is no single "current event" whose partition Faust could use,
and ``use_partitioner=True`` asks the producer to partition keys of changelog
topics whose metadata it may not have loaded yet. Every key reaching a stage
was produced with Kafka's default partitioner (murmur2 of the key bytes), so
its record, its table entry and its changelog partition are computed by the
same function here.

The windows table holds several small rows per dims key (see
``streams/domain/windows.py``); ``RowTable`` places each row in its dims
key's partition.
"""

from __future__ import annotations

import functools
from collections.abc import ItemsView, Iterator, MutableMapping
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from streams.pipeline.preload import PreloadStore
from streams.pipeline.writes import WriteBarrier


@functools.lru_cache(maxsize=16_384)
def key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (Java and aiokafka agree).

    Cached: aiokafka's murmur2 is pure Python (about 2.4 us), and the same
    key comes back soon (a ticket id at ingest, then as its table row; a
    dims key for every row it writes)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitionedTable(faust.Table):  # type: ignore[type-arg]
    def _new_store(self) -> PreloadStore:
        # Faust's in-memory store, which a new worker fills from the
        # changelog in bulk before the app starts (see preload.py).
        return PreloadStore(
            "memory://",
            self.app,
            self,
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            loop=self.loop,
            options=self.options,
        )

    def partition_for_key(self, key: Any) -> int:
        partitions = self.partitions or self.app.conf.topic_partitions
        return key_partition(bytes(key), int(partitions))


def route_partition(route_key: bytes, partitions: int) -> int:
    """The partition of a route key (``t:<ticket_id>`` or ``e:<event_id>``).

    A ticket lives in the partition of its bare ticket id: the key event
    sources are asked to use (``cxstream produce`` does). So an input record
    keyed by its ticket id, with the default partitioner and as many
    partitions as cxstream's, already sits where its state is, and skips the
    re-key hop; any other record is re-keyed through the route topic to the
    same partition.
    """
    if route_key.startswith(b"t:"):
        return key_partition(route_key[2:], partitions)
    return key_partition(route_key, partitions)


class RouteKeyTable(KeyPartitionedTable):
    """The tickets table: keyed by route key, placed by ``route_partition``."""

    def partition_for_key(self, key: Any) -> int:
        partitions = self.partitions or self.app.conf.topic_partitions
        return route_partition(bytes(key), int(partitions))


#: Separates the owner key from the row id in a row table's keys. It cannot
#: occur in a dims key (label values match ``[a-z0-9 _./:-]``, joined by \x1f).
ROW_SEP = b"\x1e"


def row_key(owner: bytes, row_id: bytes) -> bytes:
    return owner + ROW_SEP + row_id


def split_row_key(key: bytes) -> tuple[bytes, bytes]:
    owner, _, row_id = key.partition(ROW_SEP)
    return owner, row_id


class RowTable(KeyPartitionedTable):
    """A table of several rows per owner key (``owner \x1e row``): every row
    lives in its owner's partition, so one worker owns all of them."""

    def partition_for_key(self, key: Any) -> int:
        partitions = self.partitions or self.app.conf.topic_partitions
        return key_partition(split_row_key(bytes(key))[0], int(partitions))


def key_partitioned_table(
    app: faust.App, name: str, partitions: int, cls: type[KeyPartitionedTable] = KeyPartitionedTable
) -> KeyPartitionedTable:
    table = cls(app, name=name, partitions=partitions, key_type=bytes, value_type=bytes)
    app.tables.add(table)
    return table


class ChangelogTable(MutableMapping[bytes, bytes]):
    """A key-partitioned table as the stages read and write it.

    Reads and writes go to Faust's store in memory at once; each write's
    changelog record (a delete's tombstone) is queued on the write barrier
    and sent with the batch's flush, one produce batch per changelog
    partition, instead of through Faust's per-write path (see writes.py).
    The records are what Faust's table would have written (same topic,
    partition, key and value), so recovery, standbys and the bulk preload
    read them as before."""

    def __init__(self, table: KeyPartitionedTable, barrier: WriteBarrier) -> None:
        self._table = table
        self._topic = table.changelog_topic.get_topic_name()
        self._barrier = barrier

    @property
    def _data(self) -> dict[bytes, bytes]:
        # The store's dict, looked up each time: Faust makes the store when
        # first used, and a recovery may fill it.
        data: Any = self._table.data.data
        return data  # type: ignore[no-any-return]

    def __getitem__(self, key: bytes) -> bytes:
        return self._data[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        return self._data.get(key, default)

    def items(self) -> ItemsView[bytes, bytes]:
        return self._data.items()

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._data[key] = value
        self._barrier.changelog(self._topic, self._partition(key), key, value)

    def __delitem__(self, key: bytes) -> None:
        del self._data[key]
        self._barrier.changelog(self._topic, self._partition(key), key, None)

    def _partition(self, key: bytes) -> int:
        partition = self._table.partition_for_key(key)
        assert partition is not None  # key-partitioned: always computed
        return int(partition)
