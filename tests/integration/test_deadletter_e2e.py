"""Bad input on a real broker: every invalid record lands in the dead-letter
topic byte for byte with its reason, valid metrics are unaffected, and the
worker keeps consuming afterwards."""

from __future__ import annotations

import random
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from tests.support import Topics, WorkerProcess, read_topic, samples, total, utc, value, wait_for

pytestmark = pytest.mark.integration


def _invalid_corpus(now: float) -> list[tuple[bytes, str]]:
    """(raw value, expected reason), many of each kind."""
    good = {"event_id": "x", "type": "survey.nps", "occurred_at": utc(now - 30), "score": 5}
    out: list[tuple[bytes, str]] = []
    rng = random.Random(3)
    for i in range(40):
        out.append((b"\xff\xfe\xfa" + bytes([i]), "malformed"))
        out.append((b"{not json" + str(i).encode(), "malformed"))
        out.append((orjson.dumps([1, 2, i]), "malformed"))
        out.append(
            (orjson.dumps({**good, "event_id": f"big{i}", "comment": "x" * 70_000}), "too_large")
        )
        out.append(
            (
                orjson.dumps({**good, "event_id": f"u{i}", "type": "survey.sentiment"}),
                "unknown_type",
            )
        )
        out.append(
            (
                orjson.dumps(
                    {**good, "event_id": f"tt{i}", "type": "ticket.created", "ticket_id": "t"}
                ),
                "unknown_type",
            )
        )
        out.append((orjson.dumps({**good, "event_id": f"b{i}", "score": True}), "schema"))
        out.append((orjson.dumps({**good, "event_id": f"f{i}", "score": 9.5}), "schema"))
        out.append(
            (
                orjson.dumps({**good, "event_id": f"n{i}", "occurred_at": "2026-01-01T10:00:00"}),
                "schema",
            )
        )
        out.append((orjson.dumps({**good, "event_id": f"d{i}", "channel": "Bad!Value"}), "schema"))
        out.append(
            (
                orjson.dumps({**good, "event_id": f"r{i}", "score": 11 + rng.randint(0, 5)}),
                "out_of_range",
            )
        )
        out.append(
            (
                orjson.dumps({**good, "event_id": f"z{i}", "occurred_at": utc(now + 3600)}),
                "future_timestamp",
            )
        )
    out.append((b"null", "malformed"))
    return out


def test_deadletter_byte_for_byte(kafka_bootstrap: str, topics: Topics, workdir: Path) -> None:
    worker = WorkerProcess(kafka_bootstrap, topics, workdir)
    try:
        worker.wait_ready()
        now = time.time()
        bad = _invalid_corpus(now)
        valid = [
            {
                "event_id": f"ok-{i}",
                "type": "survey.csat",
                "occurred_at": utc(now - 10 - i),
                "score": 1 + i % 5,
                "channel": "email",
                "team": "support",
            }
            for i in range(50)
        ]
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        rng = random.Random(5)
        mixed: list[tuple[bytes | None, bytes, str | None]] = [
            (f"k{i}".encode(), raw, reason) for i, (raw, reason) in enumerate(bad)
        ] + [(None, orjson.dumps(v), None) for v in valid]
        rng.shuffle(mixed)
        for key, raw, _ in mixed:
            producer.send(topics.surveys, key=key, value=raw)
        producer.flush()

        wait_for(
            lambda: (
                total(samples(worker.scrape()), "cx_events_total", source="surveys") == len(mixed)
            ),
            120,
            what="every record counted",
        )

        def dead_letters() -> list | None:
            records = read_topic(kafka_bootstrap, topics.deadletter)
            return records if len(records) >= len(bad) else None

        dead = wait_for(dead_letters, 60, what="dead letters")
        assert len(dead) == len(bad)
        want = {(k, raw): reason for k, raw, reason in mixed if reason is not None}
        got = {}
        for rec in dead:
            headers = {k: v for k, v in rec.headers}
            assert headers["cx-source-topic"] == topics.surveys.encode()
            assert int(headers["cx-source-partition"]) >= 0
            assert int(headers["cx-source-offset"]) >= 0
            assert headers["cx-error-detail"]
            got[(rec.key, rec.value)] = headers["cx-error-reason"].decode()
        assert got == want  # same keys, same bytes, the right reason each

        smp = samples(worker.scrape())
        by_reason: dict[str, int] = {}
        for _, _, reason in mixed:
            if reason:
                by_reason[reason] = by_reason.get(reason, 0) + 1
        for reason, n in by_reason.items():
            assert value(smp, "cx_events_invalid_total", source="surveys", reason=reason) == n, (
                reason
            )
        labels = {"channel": "email", "team": "support"}
        for score in range(1, 6):
            assert value(smp, "cx_csat_responses_total", score=str(score), **labels) == 10
        assert value(smp, "cx_csat_ratio", window="1h", **labels) == pytest.approx(0.4)

        # Still consuming after the storm.
        producer.send(
            topics.surveys,
            value=orjson.dumps(
                {
                    "event_id": "after",
                    "type": "survey.csat",
                    "occurred_at": utc(time.time() - 1),
                    "score": 5,
                    "channel": "email",
                    "team": "support",
                }
            ),
        )
        producer.flush()
        wait_for(
            lambda: (
                value(samples(worker.scrape()), "cx_csat_responses_total", score="5", **labels)
                == 11
            ),
            60,
            what="a valid event after the bad ones",
        )
        producer.close()
    finally:
        worker.stop()
