"""Admin and producer tooling on kafka-python: topic set-up and `cxstream produce`."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from streams.errors import ProduceError
from streams.kafka_security import kafka_python_kwargs, probe, ssl_context
from streams.settings import Settings

log = logging.getLogger(__name__)


#: Changelog topics: compacted (a key's latest value is its state), in
#: segments small enough to be compacted while the worker runs. Kafka never
#: compacts the segment being written, and a worker replays its changelogs
#: whole on every start, so with the broker's 1 GiB or 7-day segments a
#: restart replays every version of every ticket state ever written.
CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.bytes": str(16 * 1024 * 1024),
    "segment.ms": str(24 * 3600 * 1000),
}


def internal_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """The worker's own topics and their configs (see CHANGELOG_CONFIG)."""
    return {
        f"{settings.app_id}-route": {},
        f"{settings.app_id}-observations": {},
        f"{settings.app_id}-tickets-changelog": CHANGELOG_CONFIG,
        f"{settings.app_id}-windows-changelog": CHANGELOG_CONFIG,
    }


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Bootstrap servers and security for a kafka-python client."""
    sec = settings.kafka_security
    return {
        "bootstrap_servers": settings.bootstrap.split(","),
        **kafka_python_kwargs(sec, ssl_context(sec)),
    }


def all_topics(settings: Settings) -> dict[str, dict[str, str]]:
    """Every topic a worker reads or writes, public first, with its configs."""
    return {
        settings.tickets_topic: {},
        settings.surveys_topic: {},
        settings.alerts_topic: {},
        settings.deadletter_topic: {},
        **internal_topics(settings),
    }


def ensure_topics(
    settings: Settings, timeout_s: float = 30.0, retention_ms: int | None = None
) -> list[str]:
    """Create the topics that do not exist yet; returns those created.

    Public topics and the worker's internal and changelog topics are created
    *before* Faust subscribes: a consumer that subscribes to a topic the
    broker does not know yet is assigned none of its partitions until its
    next metadata refresh, minutes later. Existing topics are left as they
    are (idempotent). ``retention_ms`` applies to the non-compacted topics;
    changelogs are compacted and must keep every key's latest value.
    """
    wanted = all_topics(settings)
    if retention_ms is not None:
        wanted = {
            name: config
            if config.get("cleanup.policy") == "compact"
            else {**config, "retention.ms": str(retention_ms)}
            for name, config in wanted.items()
        }
    admin = KafkaAdminClient(
        **client_kwargs(settings),
        client_id="cxstream-admin",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        existing = set(admin.list_topics())
        created: list[str] = []
        for name, config in wanted.items():
            if name in existing:
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            settings.partitions,
                            settings.replication_factor,
                            topic_configs=config,
                        )
                    ]
                )
                created.append(name)
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        deadline = time.monotonic() + timeout_s
        while created and time.monotonic() < deadline:
            if set(wanted) <= set(admin.list_topics()):
                break
            time.sleep(0.2)
        return created
    finally:
        admin.close()


def partition_counts(settings: Settings, names: Iterable[str]) -> dict[str, int]:
    """How many partitions each of these existing topics has."""
    admin = KafkaAdminClient(**client_kwargs(settings), client_id="cxstream-admin")
    try:
        return {
            str(t.get("name", t.get("topic"))): len(t["partitions"])
            for t in admin.describe_topics(list(names))
            if t.get("partitions")
        }
    finally:
        admin.close()


def route_topic(doc: object, settings: Settings) -> str | None:
    """The input topic for an event by its ``type`` prefix, or None."""
    if isinstance(doc, dict):
        kind = doc.get("type")
        if isinstance(kind, str):
            if kind.startswith("ticket."):
                return settings.tickets_topic
            if kind.startswith("survey."):
                return settings.surveys_topic
    return None


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        stripped = line.strip()
        if stripped:
            yield number, stripped


def produce(
    settings: Settings,
    lines: Iterable[tuple[int, bytes]],
    *,
    key_by: str | None = "ticket_id",
    err: IO[str] = sys.stderr,
) -> tuple[int, int]:
    """Send JSON Lines to the right input topic by ``type``.

    The bytes are sent as they are (the worker validates; a broken line is
    the worker's to dead-letter, never ours to fix). Lines whose topic cannot
    be told (not JSON, no ``type``) are reported and skipped. Records are keyed
    by ``ticket_id`` when present so one ticket's events stay in order.
    Returns (sent, skipped).
    """
    probe(settings.bootstrap, settings.kafka_security)  # a clear error, not retries
    producer = KafkaProducer(
        **client_kwargs(settings),
        acks="all",
        linger_ms=20,
        retries=5,
        client_id="cxstream-produce",
    )
    sent = skipped = 0
    failures: list[str] = []
    try:
        for number, raw in lines:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError:
                doc = None
            topic = route_topic(doc, settings)
            if topic is None:
                print(f"line {number}: skipped: no ticket.* or survey.* type", file=err)
                skipped += 1
                continue
            key = None
            if key_by and isinstance(doc, dict) and isinstance(doc.get(key_by), str):
                key = doc[key_by].encode()
            future = producer.send(topic, key=key, value=raw)
            future.add_errback(lambda exc, n=number: failures.append(f"line {n}: {exc}"))
            sent += 1
        producer.flush(timeout=60)
    except KafkaError as exc:
        raise ProduceError(f"could not produce to {settings.bootstrap}: {exc}") from exc
    finally:
        producer.close(timeout=10)
    if failures:
        raise ProduceError(f"{len(failures)} records failed, first: {failures[0]}")
    return sent, skipped


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    committed: int | None  # None: the group has committed nothing here

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(0, self.end_offset - self.committed)


def describe_topics(settings: Settings, timeout_s: float = 30.0) -> dict[str, list[PartitionLag]]:
    """Partitions of every worker topic and the lag of the worker's consumer group.

    The group is the app id (Faust's consumer group). Missing topics map to
    an empty list. Reading committed offsets does not join the group, so
    this is safe while workers run. Changelog topics are read by recovery,
    not through the group, so they show no committed offset.
    """
    consumer = KafkaConsumer(
        **client_kwargs(settings),
        group_id=settings.app_id,
        enable_auto_commit=False,
        client_id="cxstream-describe",
        request_timeout_ms=int(timeout_s * 1000) + 1000,
    )
    try:
        known = consumer.topics()
        out: dict[str, list[PartitionLag]] = {}
        for topic in all_topics(settings):
            parts = sorted(consumer.partitions_for_topic(topic) or ()) if topic in known else []
            tps = [TopicPartition(topic, p) for p in parts]
            ends = consumer.end_offsets(tps) if tps else {}
            out[topic] = [
                PartitionLag(topic, tp.partition, int(ends[tp]), consumer.committed(tp))
                for tp in tps
            ]
        return out
    finally:
        consumer.close()


def format_description(topics: dict[str, list[PartitionLag]], group: str) -> str:
    """A table of topics, partitions, end offsets, committed offsets and lag."""
    lines = [
        f"consumer group {group}",
        f"{'topic':40} {'part':>4} {'end':>10} {'committed':>10} {'lag':>8}",
    ]
    for topic, parts in topics.items():
        if not parts:
            lines.append(f"{topic:40} {'(missing)':>4}")
            continue
        total = sum(p.lag or 0 for p in parts)
        for p in parts:
            committed = "-" if p.committed is None else str(p.committed)
            lag = "-" if p.lag is None else str(p.lag)
            lines.append(f"{topic:40} {p.partition:>4} {p.end_offset:>10} {committed:>10} {lag:>8}")
        lines.append(
            f"{topic:40} {'all':>4} {sum(p.end_offset for p in parts):>10} {'':>10} {total:>8}"
        )
    return "\n".join(lines)
