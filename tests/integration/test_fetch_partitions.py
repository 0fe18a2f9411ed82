"""What a fetch in the consumer's thread takes, on the real broker.

Faust hands the Kafka client its live set of active partitions, and the
client filters the records it holds with ``if partitions and tp not in
partitions``: a set emptied while the fetch waits (a rebalance pausing
everything) lets every partition's records through, and their positions move
past them. ``ActivePartitions`` (streams/pipeline/offsets.py) is what the
worker hands it instead. These tests pin both sides with the client Faust
uses: if the client's reading of an empty set ever changes, the first test
says so.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streams.pipeline.offsets import ActivePartitions

pytestmark = pytest.mark.integration

RECORDS = 5


def _topic_with_records(bootstrap: str) -> tuple[TopicPartition, TopicPartition]:
    name = f"fetch-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for partition in (0, 1):
            for i in range(RECORDS):
                producer.send(name, key=b"k", value=str(i).encode(), partition=partition)
        producer.flush()
    finally:
        producer.close()
    return TopicPartition(name, 0), TopicPartition(name, 1)


async def _fetch_with(bootstrap: str, make_filter: Any) -> tuple[dict[Any, int], dict[Any, int]]:
    """Records taken per partition by one wait of the client's fetcher given
    ``make_filter(live)``, with the live set emptied after the fetch began
    (as a rebalance does); then each partition's position."""
    tp0, tp1 = _topic_with_records(bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp0, tp1])
        await consumer.seek_to_beginning(tp0, tp1)
        live = {tp0}  # only partition 0 active when the fetch is asked for
        fetcher = consumer._fetcher
        taken = asyncio.ensure_future(fetcher.fetched_records(make_filter(live), timeout=3.0))
        live.clear()  # ...and none by the time the records arrive
        records = await taken
        return (
            {tp.partition: len(batch) for tp, batch in records.items()},
            {tp.partition: await consumer.position(tp) for tp in (tp0, tp1)},
        )
    finally:
        await consumer.stop()


def test_the_client_reads_an_emptied_live_set_as_every_partition(kafka_bootstrap: str) -> None:
    taken, positions = asyncio.run(_fetch_with(kafka_bootstrap, lambda live: live))
    # Both partitions drained, even the one never asked for: this is what
    # lost a table recovery's changelog records.
    assert taken == {0: RECORDS, 1: RECORDS}
    assert positions == {0: RECORDS, 1: RECORDS}


def test_the_guarded_fetch_takes_nothing_once_nothing_is_active(kafka_bootstrap: str) -> None:
    taken, positions = asyncio.run(_fetch_with(kafka_bootstrap, ActivePartitions))
    assert taken == {}
    assert positions == {0: 0, 1: 0}  # nothing skipped: read again when resumed
