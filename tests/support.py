"""Test helpers: a real worker process, producing, reading topics, scraping."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def utc(ts_s: float) -> str:
    """RFC 3339 with Z and microseconds."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_s, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Topics:
    """Unique topic names per test, so tests never see each other's data."""

    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")

    @property
    def app_id(self) -> str:
        return f"{self.prefix}-app"

    @property
    def tickets(self) -> str:
        return f"{self.prefix}.tickets"

    @property
    def surveys(self) -> str:
        return f"{self.prefix}.surveys"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def deadletter(self) -> str:
        return f"{self.prefix}.deadletter"

    def flags(self) -> list[str]:
        return [
            "--app-id",
            self.app_id,
            "--tickets-topic",
            self.tickets,
            "--surveys-topic",
            self.surveys,
            "--alerts-topic",
            self.alerts,
            "--deadletter-topic",
            self.deadletter,
        ]


class WorkerProcess:
    """A real `cxstream worker` subprocess."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        data_dir: Path,
        extra: Sequence[str] = (),
        partitions: int = 4,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.log_path = data_dir / f"worker-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "streams",
            "worker",
            "--bootstrap",
            bootstrap,
            "--web-port",
            str(self.port),
            "--web-host",
            "127.0.0.1",
            "--data-dir",
            str(data_dir / f"state-{self.port}"),
            "--partitions",
            str(partitions),
            "--tick-interval",
            "1s",
            *topics.flags(),
            *extra,
        ]
        # Only the CX_* variables given here (e.g. a SASL password) reach it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")} | (env or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return bytes(resp.read())

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(orjson.loads(self.get("/healthz")))
        except Exception:
            return None

    def wait_ready(self, timeout: float = 120.0, min_partitions: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"worker exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            h = self.health()
            if h is not None and len(h.get("active_partitions", [])) >= min_partitions:
                return
            time.sleep(0.5)
        raise AssertionError(f"worker not ready in {timeout}s:\n{self.log_tail()}")

    def scrape(self) -> str:
        return self.get("/metrics").decode()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def produce(bootstrap: str, topic: str, docs: Iterable[Any], key_field: str | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    n = 0
    for doc in docs:
        if isinstance(doc, bytes):
            value, key = doc, None
        else:
            value = orjson.dumps(doc)
            key = (
                doc.get(key_field).encode()
                if key_field and isinstance(doc.get(key_field), str)
                else None
            )
        producer.send(topic, key=key, value=value)
        n += 1
    producer.flush(60)
    producer.close()
    return n


def read_topic(bootstrap: str, topic: str, timeout_s: float = 10.0) -> list[Any]:
    """Every record currently in a topic (all partitions), as kafka-python records."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        parts: set[int] | None = None
        while time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic)
            if parts:
                break
            time.sleep(0.2)
        if not parts:
            return []
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out: list[Any] = []
        while time.monotonic() < deadline and any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse an exposition into {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(
    smp: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return smp.get((name, frozenset(labels.items())))


def total(
    smp: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    """Sum of all samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in smp.items() if n == name and want <= set(ls))


def wait_for(predicate: Any, timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last={last!r}")
