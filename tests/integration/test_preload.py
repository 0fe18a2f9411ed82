"""Reading changelogs in bulk (streams/pipeline/preload.py) on the real broker:
the store ends with exactly what replaying each partition in order gives,
its marks say where Faust's own replay resumes, and what it was not given
or could not read is dropped."""

from __future__ import annotations

import asyncio
import random
import uuid

import faust
import pytest
from faust.types import TP
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from streams.pipeline.preload import PreloadStore, preload
from streams.pipeline.tables import key_partitioned_table

pytestmark = pytest.mark.integration

PARTITIONS = 3


def _table_store(bootstrap: str) -> tuple[faust.App, str, PreloadStore]:
    app = faust.App(f"preload-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}")
    table = key_partitioned_table(app, "windows", PARTITIONS)
    store = table.data
    assert isinstance(store, PreloadStore)
    return app, table.changelog_topic.get_topic_name(), store


def _write(bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes | None]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for partition, key, value in records:
            producer.send(topic, key=key, value=value, partition=partition)
        producer.flush()
    finally:
        producer.close()


def _read_after_marks(
    bootstrap: str, topic: str, marks: dict[int, int]
) -> list[tuple[int, bytes, bytes | None]]:
    """What Faust's replay reads: each partition from after its mark (or
    from its start), to its end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, marks.get(tp.partition, -1) + 1)
        end = consumer.end_offsets(tps)
        out: list[tuple[int, bytes, bytes | None]] = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for tp, batch in consumer.poll(timeout_ms=1000).items():
                out += [(tp.partition, r.key, r.value) for r in batch]
        return out
    finally:
        consumer.close()


def _replayed(records: list[tuple[int, bytes, bytes | None]]) -> dict[bytes, bytes]:
    """The data after applying records in order: the last value wins, None deletes."""
    data: dict[bytes, bytes] = {}
    for _, key, value in records:
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def _changes(
    rng: random.Random, n: int, partitions: tuple[int, ...]
) -> list[tuple[int, bytes, bytes | None]]:
    out: list[tuple[int, bytes, bytes | None]] = []
    for i in range(n):
        p = rng.choice(partitions)
        key = b"p%d-k%d" % (p, rng.randrange(60))  # a key stays in one partition
        value = None if rng.random() < 0.15 else b"v%d" % i
        out.append((p, key, value))
    return out


def test_the_store_holds_each_partitions_replay_and_marks_where_faust_resumes(
    kafka_bootstrap: str,
) -> None:
    app, topic, store = _table_store(kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    rng = random.Random(7)
    first = _changes(rng, 3000, (0, 1))  # partition 2 stays empty
    _write(kafka_bootstrap, topic, first)

    done = preload(kafka_bootstrap, {}, {topic: store}, {topic: PARTITIONS}, 10_000)
    assert done is not None and done.records == len(first) and done.partitions == PARTITIONS
    assert dict(store.data) == _replayed(first)
    assert all(store._key_partition[k] == int(k[1:2]) for k in store.data)
    per_partition = {p: sum(1 for q, _, _ in first if q == p) for p in (0, 1)}
    # The mark is the offset of the last record read: Faust resumes after it.
    assert store.marks == {p: n - 1 for p, n in per_partition.items()}
    assert store.persisted_offset(TP(topic, 0)) == per_partition[0] - 1
    assert store.persisted_offset(TP(topic, 2)) is None  # nothing read: replayed whole
    assert store.persisted_offset(TP("another-topic", 0)) is None

    # What is written later, read from each mark on, completes the replay.
    later = _changes(rng, 500, (0, 1, 2))
    _write(kafka_bootstrap, topic, later)
    resumed = dict(store.data)
    for _, key, value in _read_after_marks(kafka_bootstrap, topic, store.marks):
        if value is None:
            resumed.pop(key, None)
        else:
            resumed[key] = value
    assert resumed == _replayed(first + later)

    # Given partitions 0 (active) and 2 (standby) only: partition 1's data
    # and mark are dropped; its owner has them.
    app.assignor.assigned_actives = lambda: {TP(topic, 0)}  # type: ignore[method-assign]
    app.assignor.assigned_standbys = lambda: {TP(topic, 2)}  # type: ignore[method-assign]
    asyncio.run(store.on_rebalance(set(), set(), set()))
    assert dict(store.data) == _replayed([r for r in first if r[0] == 0])
    assert set(store._key_partition.values()) == {0}
    assert store.marks == {0: per_partition[0] - 1}
    # After a completed recovery Faust tracks offsets itself.
    asyncio.run(store.on_recovery_completed({TP(topic, 0)}, {TP(topic, 2)}))
    assert store.marks == {} and store.persisted_offset(TP(topic, 0)) is None


def test_a_failed_bulk_read_leaves_nothing_behind(kafka_bootstrap: str) -> None:
    _, topic, store = _table_store(kafka_bootstrap)
    store.put_loaded(0, b"half-read", b"row")
    store.marks[0] = 41
    # No broker there: the read fails, and what was loaded goes with it
    # (Faust then replays every partition as usual).
    done = preload("127.0.0.1:1", {}, {topic: store}, {topic: PARTITIONS}, 10_000, timeout_s=20.0)
    assert done is None
    assert dict(store.data) == {} and store.marks == {} and not store._key_partition


def test_changelogs_larger_than_the_limit_are_left_to_faust(kafka_bootstrap: str) -> None:
    _, topic, store = _table_store(kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    _write(kafka_bootstrap, topic, _changes(random.Random(3), 300, (0, 1, 2)))
    assert preload(kafka_bootstrap, {}, {topic: store}, {topic: PARTITIONS}, 299) is None
    assert dict(store.data) == {} and store.marks == {}
    done = preload(kafka_bootstrap, {}, {topic: store}, {topic: PARTITIONS}, 300)
    assert done is not None and done.records == 300
