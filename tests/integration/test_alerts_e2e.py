"""Alerts on a real broker: an injected incident fires exactly the expected
alerts, recovery resolves them, and a worker restart in the middle repeats
nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.test_alertmanager import alertmanager  # noqa: F401 - the real-Alertmanager fixture
from tests.support import (
    Topics,
    WorkerProcess,
    produce,
    read_topic,
    samples,
    utc,
    value,
    wait_for,
)

pytestmark = pytest.mark.integration


def _alerts(bootstrap: str, topics: Topics) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in read_topic(bootstrap, topics.alerts)]


def _surveys(
    prefix: str, kind: str, scores: list[int], now: float, **extra: Any
) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{i}",
            "type": kind,
            "occurred_at": utc(now - 120 + i * 0.01),
            "score": s,
            **extra,
        }
        for i, s in enumerate(scores)
    ]


def test_incident_fires_resolves_and_survives_restart(
    kafka_bootstrap: str, topics: Topics, workdir: Path
) -> None:
    worker = WorkerProcess(kafka_bootstrap, topics, workdir / "a")
    try:
        worker.wait_ready()
        now = time.time()
        bad = {"channel": "chat", "team": "billing"}
        good = {"channel": "email", "team": "support"}
        # Healthy traffic elsewhere: must not alert.
        produce(
            kafka_bootstrap,
            topics.surveys,
            _surveys("g-nps", "survey.nps", [9, 10, 8] * 15, now, **good),
        )
        produce(
            kafka_bootstrap,
            topics.surveys,
            _surveys("g-csat", "survey.csat", [5, 4, 4] * 15, now, **good),
        )
        # The incident: 40 detractors (3 with a comment) and 35 unhappy CSAT on chat/billing.
        incident = _surveys("b-nps", "survey.nps", [2] * 40, now, **bad)
        for doc in incident[:3]:
            doc["comment"] = "nobody answered"
            doc["respondent_id"] = "cust-1"
        produce(kafka_bootstrap, topics.surveys, incident)
        produce(
            kafka_bootstrap, topics.surveys, _surveys("b-csat", "survey.csat", [1] * 35, now, **bad)
        )

        def firing() -> list[dict[str, Any]] | None:
            docs = _alerts(kafka_bootstrap, topics)
            names = sorted(d["labels"]["alertname"] for d in docs if d["status"] == "firing")
            return (
                docs
                if names.count("CxNpsLow")
                and names.count("CxCsatLow")
                and names.count("CxDetractorResponse") == 3
                else None
            )

        docs = wait_for(firing, 90, what="CxNpsLow, CxCsatLow and 3 detractor alerts")
        time.sleep(3)  # nothing else may follow
        docs = _alerts(kafka_bootstrap, topics)
        names = sorted(d["labels"]["alertname"] for d in docs)
        assert names == sorted(["CxNpsLow", "CxCsatLow"] + ["CxDetractorResponse"] * 3), names
        for d in docs:
            assert d["status"] == "firing"
            assert d["labels"]["channel"] == "chat" and d["labels"]["team"] == "billing"
            assert d["fingerprint"] and d["startsAt"]
        nps = next(d for d in docs if d["labels"]["alertname"] == "CxNpsLow")
        assert nps["labels"]["window"] == "24h" and nps["labels"]["severity"] == "warning"
        assert nps["value"] == pytest.approx(-100.0) and nps["threshold"] == 0
        assert 30 <= nps["sample_size"] <= 40  # fires at the first evaluation with enough samples
        det = [d for d in docs if d["labels"]["alertname"] == "CxDetractorResponse"]
        assert len({d["fingerprint"] for d in det}) == 3
        assert all(d["labels"]["severity"] == "info" for d in det)
        assert all("cust-1" in orjson.dumps(d["annotations"]).decode() for d in det)
        smp = samples(worker.scrape())
        for name, severity, n in (
            ("CxNpsLow", "warning", 1),
            ("CxCsatLow", "warning", 1),
            ("CxDetractorResponse", "info", 3),
        ):
            labels = {"alertname": name, "severity": severity}
            assert value(smp, "cx_alerts_total", status="firing", **labels) == n
            assert value(smp, "cx_alerts_firing", **labels) == n
    finally:
        worker.stop()

    # Restart: a new worker process takes over the same state; nothing repeats.
    worker = WorkerProcess(kafka_bootstrap, topics, workdir / "b")
    try:
        worker.wait_ready()
        time.sleep(5)  # several evaluation ticks
        assert len(_alerts(kafka_bootstrap, topics)) == len(docs), "alerts repeated after a restart"

        # Recovery: enough happy responses bring NPS >= 0 and CSAT >= 0.70.
        now = time.time()
        produce(
            kafka_bootstrap, topics.surveys, _surveys("r-nps", "survey.nps", [10] * 60, now, **bad)
        )
        produce(
            kafka_bootstrap,
            topics.surveys,
            _surveys("r-csat", "survey.csat", [5] * 120, now, **bad),
        )

        def resolved() -> list[dict[str, Any]] | None:
            all_docs = _alerts(kafka_bootstrap, topics)
            res = [d for d in all_docs if d["status"] == "resolved"]
            return (
                all_docs
                if {d["labels"]["alertname"] for d in res} >= {"CxNpsLow", "CxCsatLow"}
                else None
            )

        all_docs = wait_for(resolved, 90, what="CxNpsLow and CxCsatLow resolved")
        time.sleep(3)
        all_docs = _alerts(kafka_bootstrap, topics)
        res = [d for d in all_docs if d["status"] == "resolved"]
        assert sorted(d["labels"]["alertname"] for d in res) == ["CxCsatLow", "CxNpsLow"]
        fired = {d["labels"]["alertname"]: d["fingerprint"] for d in docs}
        for d in res:
            assert d["fingerprint"] == fired[d["labels"]["alertname"]]
            assert d["endsAt"]
    finally:
        worker.stop()


def test_worker_forwards_to_a_real_alertmanager(
    kafka_bootstrap: str,
    topics: Topics,
    workdir: Path,
    alertmanager: Any,  # noqa: F811
) -> None:
    """`cxstream worker --alertmanager URL`: an incident's alert appears in a
    real Alertmanager with the contract's labels."""
    alertmanager.start()
    worker = WorkerProcess(
        kafka_bootstrap, topics, workdir, extra=["--alertmanager", alertmanager.url]
    )
    try:
        worker.wait_ready()
        bad = {"channel": "web", "team": "returns"}
        produce(
            kafka_bootstrap,
            topics.surveys,
            _surveys("am", "survey.nps", [1] * 35, time.time(), **bad),
        )

        def in_alertmanager() -> list[dict[str, Any]] | None:
            found = [a for a in alertmanager.alerts() if a["labels"].get("alertname") == "CxNpsLow"]
            return found or None

        alerts = wait_for(in_alertmanager, 90, what="CxNpsLow in Alertmanager")
        assert alerts[0]["labels"] == {
            "alertname": "CxNpsLow",
            "severity": "warning",
            "window": "24h",
            **bad,
        }
        assert alerts[0]["status"]["state"] == "active"
    finally:
        worker.stop()
