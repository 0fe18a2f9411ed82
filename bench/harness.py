"""Shared parts of the benchmark suite: events, topics, a worker, a clock.

Benchmarks run against a real broker (CX_BENCH_BOOTSTRAP, or one they start
with deploy/kafka-local/kafka.sh). The load driver and the measured worker are
separate processes; nothing here asserts, everything prints figures.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
US = 1_000_000


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_events(n: int, seed: int, now_s: float | None = None) -> list[bytes]:
    """About n demo-mix events (tickets and surveys of many desks, most
    within 24 h, some days old, 5 % duplicates), encoded, in arrival order."""
    from streams.traffic import TrafficGenerator

    now_s = time.time() if now_s is None else now_s
    gen = TrafficGenerator(seed=seed)
    rng = random.Random(seed)
    out: list[bytes] = []
    while len(out) < n:
        age = rng.uniform(0, 86_400) if rng.random() < 0.85 else rng.uniform(86_400, 20 * 86_400)
        for ev in gen.ticket_story(now_s - age - 7_200):
            if dt.datetime.fromisoformat(ev["occurred_at"]).timestamp() > now_s:
                continue
            raw = orjson.dumps(ev)
            out.append(raw)
            if rng.random() < 0.05:
                out.append(raw)
    return out[:n]


@dataclass
class BenchTopics:
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}")

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    @property
    def tickets(self) -> str:
        return f"{self.prefix}.tickets"

    @property
    def surveys(self) -> str:
        return f"{self.prefix}.surveys"

    def flags(self) -> list[str]:
        return [
            "--app-id",
            self.app_id,
            "--tickets-topic",
            self.tickets,
            "--surveys-topic",
            self.surveys,
            "--alerts-topic",
            f"{self.prefix}.alerts",
            "--deadletter-topic",
            f"{self.prefix}.deadletter",
        ]


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        admin.close()


def produce(bootstrap: str, topics: BenchTopics, events: list[bytes]) -> float:
    """Send events to their input topic keyed by ticket id; returns seconds taken."""
    t0 = time.perf_counter()
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, batch_size=256 * 1024
    )
    for raw in events:
        doc = orjson.loads(raw)
        topic = topics.tickets if doc["type"].startswith("ticket.") else topics.surveys
        key = doc.get("ticket_id")
        producer.send(topic, key=key.encode() if key else None, value=raw)
    producer.flush(300)
    producer.close()
    return time.perf_counter() - t0


class Worker:
    """A `cxstream worker` subprocess for measuring."""

    def __init__(
        self, bootstrap: str, topics: BenchTopics, data_dir: Path, extra: list[str] | None = None
    ) -> None:
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"worker-{self.port}.log"
        cmd = [
            sys.executable, "-m", "streams", "worker",
            "--bootstrap", bootstrap,
            "--web-port", str(self.port),
            "--web-host", "127.0.0.1",
            "--data-dir", str(data_dir / f"state-{self.port}"),
            "--log-level", "warning",
            *topics.flags(),
            *(extra or []),
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return bytes(resp.read())

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(self.get("/metrics").decode()):
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def processed(self) -> float:
        try:
            smp = self.samples()
        except Exception:
            return -1.0
        return sum(v for (n, _), v in smp.items() if n == "cx_events_total")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def wait_processed(
    workers: list[Worker], n: int, timeout_s: float
) -> Iterator[tuple[float, float]]:
    """(seconds since call, events processed across workers) until all n are done."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        done = sum(max(0.0, w.processed()) for w in workers)
        yield time.perf_counter() - t0, done
        if done >= n:
            return
        time.sleep(1.0)


def fmt_rate(x: Any) -> str:
    return f"{x:,.0f}"
