"""`cxstream topics create` and `describe` against the real broker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.structs import OffsetAndMetadata

from tests.support import REPO, Topics, produce

pytestmark = pytest.mark.integration


def _cxstream(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin"},
    )


def _config(admin: KafkaAdminClient, topic: str, key: str = "retention.ms") -> str | None:
    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    # kafka-python 3: {"topic": {name: {key: {...}}}}; 2.x: a list of responses.
    if isinstance(result, dict):
        entry = result["topic"][topic].get(key)
        return None if entry is None else str(entry["value"])
    for response in result:
        for _, _, _, _, _, configs in response.resources:
            for name, value, *_ in configs:
                if name == key:
                    return str(value)
    return None


def test_topics_create_is_idempotent_and_configurable(kafka_bootstrap: str, topics: Topics) -> None:
    flags = ["--bootstrap", kafka_bootstrap, *topics.flags(), "--partitions", "3"]
    first = _cxstream("topics", "create", *flags, "--replication-factor", "1", "--retention", "3d")
    assert first.returncode == 0, first.stderr
    created = [line.split()[1] for line in first.stdout.splitlines() if line.startswith("created")]
    assert set(created) == {
        topics.tickets,
        topics.surveys,
        topics.alerts,
        topics.deadletter,
        f"{topics.app_id}-route",
        f"{topics.app_id}-observations",
        f"{topics.app_id}-tickets-changelog",
        f"{topics.app_id}-windows-changelog",
    }
    again = _cxstream("topics", "create", *flags)
    assert again.returncode == 0, again.stderr
    assert "created" not in again.stdout and again.stdout.count("exists") == 8

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        for name in created:
            assert len(consumer.partitions_for_topic(name) or ()) == 3, name
        assert _config(admin, topics.tickets) == str(3 * 86400 * 1000)
        for table in ("tickets", "windows"):
            changelog = f"{topics.app_id}-{table}-changelog"
            # Compacted changelogs keep every key's latest value: no time
            # retention, and segments small enough to be compacted.
            assert _config(admin, changelog) is None
            assert _config(admin, changelog, "cleanup.policy") == "compact"
            assert _config(admin, changelog, "segment.bytes") == str(16 * 1024 * 1024)
    finally:
        consumer.close()
        admin.close()


def test_topics_describe_shows_partitions_and_group_lag(
    kafka_bootstrap: str, topics: Topics
) -> None:
    flags = ["--bootstrap", kafka_bootstrap, *topics.flags(), "--partitions", "2"]
    assert _cxstream("topics", "create", *flags).returncode == 0
    producer_docs = [{"event_id": f"e{i}", "type": "ticket.created"} for i in range(10)]
    # Explicit partitions: 6 records on partition 0, 4 on partition 1.
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i, doc in enumerate(producer_docs):
        producer.send(topics.tickets, value=json.dumps(doc).encode(), partition=0 if i < 6 else 1)
    producer.flush(30)
    producer.close()
    produce(kafka_bootstrap, topics.surveys, [{"event_id": "s1"}])
    # The worker's group (the app id) has processed 4 of partition 0 and all of partition 1.
    group = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=topics.app_id, enable_auto_commit=False
    )
    group.commit(
        {
            TopicPartition(topics.tickets, 0): OffsetAndMetadata(4, "", -1),
            TopicPartition(topics.tickets, 1): OffsetAndMetadata(4, "", -1),
        }
    )
    group.close()

    result = _cxstream("topics", "describe", *flags, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["group"] == topics.app_id
    tickets = doc["topics"][topics.tickets]
    assert [(p["partition"], p["end_offset"], p["committed"], p["lag"]) for p in tickets] == [
        (0, 6, 4, 2),
        (1, 4, 4, 0),
    ]
    surveys = doc["topics"][topics.surveys]
    assert sum(p["end_offset"] for p in surveys) == 1
    assert all(p["committed"] is None and p["lag"] is None for p in surveys)
    assert len(doc["topics"][f"{topics.app_id}-observations"]) == 2

    table = _cxstream("topics", "describe", *flags)
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert [topics.tickets, "0", "6", "4", "2"] in rows
    assert [topics.tickets, "all", "10", "2"] in rows
