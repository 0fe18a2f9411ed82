"""A Faust table whose changelog partition is the key's own partition.

Stages write tables once per key per batch (coalesced writes), after the
batch: there is no single "current event" whose partition Faust could use,
and ``use_partitioner=True`` asks the producer to partition keys of changelog
topics whose metadata it may not have loaded yet. Every key reaching a stage
was produced with Kafka's default partitioner (murmur2 of the key bytes), so
its record, its table entry and its changelog partition are computed by the
same function here.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.partitioner import murmur2


def key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (Java and aiokafka agree)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class KeyPartitionedTable(faust.Table):  # type: ignore[type-arg]
    def partition_for_key(self, key: Any) -> int:
        partitions = self.partitions or self.app.conf.topic_partitions
        return key_partition(bytes(key), int(partitions))


def key_partitioned_table(app: faust.App, name: str, partitions: int) -> KeyPartitionedTable:
    table = KeyPartitionedTable(
        app, name=name, partitions=partitions, key_type=bytes, value_type=bytes
    )
    app.tables.add(table)
    return table
