"""A table write the broker refuses is never acknowledged, on a real broker.

The windows table's changelog is created beforehand with a record-size
limit below its rows' size, so every window write fails (MESSAGE_TOO_LARGE,
not retried). The fetch that made them must not be acknowledged: its
observation records stay uncommitted (read again by the next owner), and
the worker says why. A flush that waited for the Kafka client alone passed
over the failure and committed them: the state they built was lost.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic

from tests.support import Topics, WorkerProcess, produce, utc, wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 4


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if hasattr(admin, "list_group_offsets"):  # kafka-python 3 renamed the call
            raw = dict(admin.list_group_offsets(group).get(group, {}))
        else:
            raw = dict(admin.list_consumer_group_offsets(group))
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in raw.items() if tp.topic == topic}


def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_a_refused_table_write_leaves_its_fetch_unacknowledged(
    kafka_bootstrap: str, topics: Topics, workdir: Path
) -> None:
    changelog = f"{topics.app_id}-windows-changelog"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    changelog,
                    PARTITIONS,
                    1,
                    topic_configs={"cleanup.policy": "compact", "max.message.bytes": "150"},
                )
            ]
        )
    finally:
        admin.close()
    worker = WorkerProcess(
        kafka_bootstrap, topics, workdir, partitions=PARTITIONS, extra=["--stall-timeout", "300s"]
    )
    try:
        worker.wait_ready(min_partitions=PARTITIONS)
        now = time.time()
        docs = [
            {"event_id": f"wf{i}", "type": "survey.nps", "occurred_at": utc(now - 60),
             "score": i % 11, "channel": "web", "team": "billing"}
            for i in range(20)
        ]  # fmt: skip
        produce(kafka_bootstrap, topics.surveys, docs)
        obs_topic = f"{topics.app_id}-observations"
        # The ticket stage's records went out (its table's changelog takes
        # them), so the observations exist ...
        wait_for(
            lambda: sum(_end_offsets(kafka_bootstrap, obs_topic).values()) > 0,
            60,
            what="observation records",
        )
        # ... and the aggregate stage's fetch of them fails on its writes.
        wait_for(
            lambda: "MessageSizeTooLarge" in worker.log_path.read_text(errors="replace"),
            60,
            what="the refused write in the worker's log",
        )
        time.sleep(3)  # three commit intervals: an acknowledged fetch would be committed
        ends = _end_offsets(kafka_bootstrap, obs_topic)
        committed = _committed(kafka_bootstrap, topics.app_id, obs_topic)
        for partition, end in ends.items():
            if end:
                assert committed.get(partition, -1) <= 0, (committed, ends, worker.log_tail())
        assert "batch delivery failed" in worker.log_path.read_text(errors="replace")
    finally:
        worker.kill()
