"""Shared parts of the benchmark suite: a broker, events, topics, workers.

Benchmarks run against a real broker (CX_BENCH_BOOTSTRAP, or one they start
with deploy/kafka-local/kafka.sh on free ports). The load driver
(bench/driver.py) and the measured workers are separate processes; nothing
here asserts, everything measures.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
RUN_DIR = REPO / ".cx-run" / "bench"
US = 1_000_000
#: partitions of every topic the suite creates (cxstream's default)
PARTITIONS = 8

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A port N with N + 1 free too (the broker's controller takes N + 1)."""
    for _ in range(100):
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two adjacent free ports")


# -- events -----------------------------------------------------------------


def _has_generate_command() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "streams", "generate", "--help"],
        cwd=REPO,
        capture_output=True,
    )
    return probe.returncode == 0


def generate_events(n: int, seed: int) -> list[bytes]:
    """n demo-mix events (encoded JSON, in arrival order): the one place the
    suite's input comes from. Uses ``cxstream generate`` where the CLI has it,
    else the same generator in-process."""
    if _has_generate_command():
        out = subprocess.run(
            [sys.executable, "-m", "streams", "generate", "--events", str(n), "--seed", str(seed)],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
        return [line for line in out.split(b"\n") if line.strip()]
    return demo_events(n, seed)


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


def nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def expected_counts(events: Iterable[bytes]) -> dict[str, dict[str, int]]:
    """What any correct processor must count for these (valid) events,
    whatever their arrival order: first sightings of an event id are
    accepted, repeats are duplicates. Keys are '|'-joined label values."""
    seen: set[str] = set()
    out: dict[str, Counter[str]] = {
        "events": Counter(),
        "created": Counter(),
        "nps": Counter(),
        "csat": Counter(),
        "ces": Counter(),
    }
    for raw in events:
        doc = orjson.loads(raw)
        kind = doc["type"]
        source = "tickets" if kind.startswith("ticket.") else "surveys"
        if doc["event_id"] in seen:
            out["events"][f"{source}|duplicate"] += 1
            continue
        seen.add(doc["event_id"])
        out["events"][f"{source}|accepted"] += 1
        if kind == "ticket.created":
            key = f"{doc.get('channel', 'unknown')}|{doc.get('team', 'unknown')}"
            out["created"][f"{key}|{doc.get('priority', 'normal')}"] += 1
        elif kind == "survey.nps":
            out["nps"][nps_category(doc["score"])] += 1
        elif kind == "survey.csat":
            out["csat"][str(doc["score"])] += 1
        elif kind == "survey.ces":
            out["ces"][str(doc["score"])] += 1
    return {name: dict(c) for name, c in out.items()}


def counts_from_samples(samples: Samples) -> dict[str, dict[str, int]]:
    """The numbers of ``expected_counts`` as cxstream's /metrics publishes them
    (survey totals summed over dims: which dims a survey inherits depends on
    arrival order)."""
    out: dict[str, Counter[str]] = {
        "events": Counter(),
        "created": Counter(),
        "nps": Counter(),
        "csat": Counter(),
        "ces": Counter(),
    }
    for (name, labels), value in samples.items():
        lab = dict(labels)
        if name == "cx_events_total":
            out["events"][f"{lab['source']}|{lab['outcome']}"] += int(value)
        elif name == "cx_tickets_created_total":
            out["created"][f"{lab['channel']}|{lab['team']}|{lab['priority']}"] += int(value)
        elif name == "cx_nps_responses_total":
            out["nps"][lab["category"]] += int(value)
        elif name == "cx_csat_responses_total":
            out["csat"][lab["score"]] += int(value)
        elif name == "cx_ces_responses_total":
            out["ces"][lab["score"]] += int(value)
    return {k: {kk: vv for kk, vv in c.items() if vv} for k, c in out.items()}


def sum_counts(parts: Iterable[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    total: dict[str, Counter[str]] = {}
    for part in parts:
        for name, c in part.items():
            total.setdefault(name, Counter()).update(c)
    return {k: {kk: vv for kk, vv in c.items() if vv} for k, c in total.items()}


def diff_counts(
    a: dict[str, dict[str, int]], b: dict[str, dict[str, int]], limit: int = 6
) -> list[str]:
    """Human-readable differences between two count sets (empty: equal)."""
    out: list[str] = []
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name, {}), b.get(name, {})
        for key in sorted(set(x) | set(y)):
            if x.get(key, 0) != y.get(key, 0):
                out.append(f"{name}[{key}]: {x.get(key, 0)} vs {y.get(key, 0)}")
    return out[:limit] + ([f"... {len(out) - limit} more"] if len(out) > limit else [])


# -- broker and topics ------------------------------------------------------


class Broker:
    """CX_BENCH_BOOTSTRAP when set, else a broker of our own on free ports."""

    def __init__(self) -> None:
        self.external = os.environ.get("CX_BENCH_BOOTSTRAP")
        self.dir: Path | None = None
        self.bootstrap = self.external or ""

    def start(self) -> str:
        if self.external:
            return self.external
        port = free_port_pair()
        self.dir = RUN_DIR / f"broker-{port}"
        shutil.rmtree(self.dir, ignore_errors=True)
        subprocess.run(
            [str(KAFKA_SH), "start", "--port", str(port), "--dir", str(self.dir)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.bootstrap = f"127.0.0.1:{port}"
        return self.bootstrap

    def stop(self) -> None:
        if self.dir is not None:
            subprocess.run([str(KAFKA_SH), "stop", "--dir", str(self.dir)], check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


@dataclass
class BenchTopics:
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}")

    @property
    def tickets(self) -> str:
        return f"{self.prefix}.tickets"

    @property
    def surveys(self) -> str:
        return f"{self.prefix}.surveys"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    def flags(self, app_id: str) -> list[str]:
        return [
            "--app-id", app_id,
            "--tickets-topic", self.tickets,
            "--surveys-topic", self.surveys,
            "--alerts-topic", self.alerts,
            "--deadletter-topic", f"{self.prefix}.deadletter",
        ]  # fmt: skip


def create_topics(bootstrap: str, topics: BenchTopics, partitions: int = PARTITIONS) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(n, partitions, 1) for n in (topics.tickets, topics.surveys, topics.alerts)]
        )
    finally:
        admin.close()


def create_changelogs(
    bootstrap: str, app_id: str, tables: Iterable[str], partitions: int = PARTITIONS
) -> None:
    """Create a Faust app's changelog topics (compacted) and wait until the
    broker's metadata shows all their partitions. A Faust app creating them
    itself at start-up can read their metadata before it is complete and
    stop with PartitionsMismatch ("0 partitions")."""
    names = [f"{app_id}-{table}-changelog" for table in tables]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(n, partitions, 1, topic_configs={"cleanup.policy": "compact"}) for n in names]
        )
        deadline = time.monotonic() + 30
        while True:
            described = {
                d["name"]: len(d["partitions"])
                for d in admin.describe_topics(names)
                if d["error_code"] == 0
            }
            if all(described.get(n) == partitions for n in names):
                return
            if time.monotonic() > deadline:
                raise HarnessError(f"changelog topics not ready in 30s: {described}")
            time.sleep(0.2)
    finally:
        admin.close()


def route(topics: BenchTopics, raw: bytes) -> tuple[str, bytes]:
    """The input topic and key of an event: keyed by ticket id, the key
    cxstream asks sources to use (surveys without one by event id)."""
    doc = orjson.loads(raw)
    topic = topics.tickets if doc["type"].startswith("ticket.") else topics.surveys
    return topic, (doc.get("ticket_id") or doc["event_id"]).encode()


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """Kafka's default partitioner for a keyed record."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class BatchProducer:
    """aiokafka's batch API: records grouped per partition, sent as whole
    batches (several times faster than a send per record, so the driver is
    never what limits a run)."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._pending: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> BatchProducer:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks=1,
            linger_ms=5,
            max_batch_size=1 << 20,
            max_request_size=8 << 20,
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._producer is not None
        await self.flush()
        await self._producer.stop()

    async def send(self, records: Iterable[tuple[str, bytes, bytes]]) -> None:
        """Queue (topic, key, value) records; delivery is awaited in flush()."""
        assert self._producer is not None
        groups: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
        for topic, key, value in records:
            groups.setdefault((topic, partition_of(key)), []).append((key, value))
        for (topic, part), recs in groups.items():
            batch = self._producer.create_batch()
            for key, value in recs:
                if batch.append(key=key, value=value, timestamp=None) is None:
                    self._pending.append(
                        await self._producer.send_batch(batch, topic, partition=part)
                    )
                    batch = self._producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            self._pending.append(await self._producer.send_batch(batch, topic, partition=part))

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


def produce(bootstrap: str, topics: BenchTopics, events: list[bytes]) -> float:
    """Send events to their input topics; returns seconds taken."""

    async def go() -> None:
        async with BatchProducer(bootstrap) as producer:
            for i in range(0, len(events), 50_000):
                chunk = events[i : i + 50_000]
                await producer.send((*route(topics, raw), raw) for raw in chunk)
                await producer.flush()

    t0 = time.perf_counter()
    asyncio.run(go())
    return time.perf_counter() - t0


# -- workers ----------------------------------------------------------------


def parse_metrics(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def rss_mb(pid: int) -> float:
    """Resident set size of a process (VmRSS), MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(m.group(1)) / 1024 if m else float("nan")


class HarnessError(RuntimeError):
    """A worker died or did not do its work in time: the run is void."""


class Worker:
    """A measured worker subprocess (``cxstream worker`` unless cmd is given)."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        topics: BenchTopics,
        app_id: str,
        extra: list[str] | None = None,
        cmd: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.dir = RUN_DIR / f"{app_id}-{self.port}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "worker.log"
        if cmd is None:
            cmd = [
                sys.executable, "-m", "streams", "worker",
                "--bootstrap", bootstrap,
                "--web-port", str(self.port),
                "--web-host", "127.0.0.1",
                "--data-dir", str(self.dir / "state"),
                "--log-level", os.environ.get("CX_BENCH_LOG_LEVEL", "warning"),
                *topics.flags(app_id),
                *(extra or []),
            ]  # fmt: skip
        else:
            cmd = [self._fill(c) for c in cmd]
        base = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
        env = {k: self._fill(v) for k, v in (env or {}).items()}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started = time.time()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env={**base, **env},
            cwd=REPO, start_new_session=True,
        )  # fmt: skip
        self.profiler: subprocess.Popen[bytes] | None = None
        seconds = os.environ.get("CX_BENCH_PROFILE")
        if seconds:
            # py-spy attached for that many seconds; collapsed stacks (one
            # line per stack and its sample count) for bench/profile_top.py.
            self.profiler = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.proc.pid),
                 "--duration", seconds, "--rate", "100", "--nonblocking", "--format", "raw",
                 "-o", str(self.dir / "profile.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

    def _fill(self, text: str) -> str:
        """{port} and {dir} in a command or environment value."""
        return text.replace("{port}", str(self.port)).replace("{dir}", str(self.dir))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise HarnessError(f"{self.name} exited with {self.proc.returncode}; log tail:\n{tail}")

    def get(self, path: str, timeout: float = 10.0) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return bytes(resp.read())

    def metrics_text(self, *names: str) -> str:
        """The exposition; with names, only those samples (``?name[]=``)."""
        query = "&".join(f"name[]={n}" for n in names)
        return self.get("/metrics" + (f"?{query}" if query else "")).decode()

    def samples(self) -> Samples:
        return parse_metrics(self.metrics_text())

    def processed(self) -> float:
        """Events counted in cx_events_total, -1 while the web server is not up."""
        self.check_alive()
        try:
            # Only that family: polled five times a second, a full scrape
            # would cost the measured worker more than the poll is worth.
            text = self.metrics_text("cx_events_total")
        except OSError:
            return -1.0
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("cx_events_total{")
        )

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def wait_up(self, timeout_s: float = 120.0) -> float:
        """Seconds until /metrics answers."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout_s:
            if self.processed() >= 0:
                return time.perf_counter() - t0
            time.sleep(0.2)
        raise HarnessError(f"{self.name}: /metrics did not answer within {timeout_s:.0f}s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.profiler is not None:
            self.profiler.wait()  # until its duration ends: the profile is written
            print(f"profile: {self.dir / 'profile.txt'}", flush=True)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@dataclass
class Progress:
    """(seconds, events processed) samples of a run, polled five times a second."""

    samples: list[tuple[float, float]] = field(default_factory=list)

    def rate(self, n: float) -> float:
        """Events/s from the first processed event to the last. The first and
        last poll intervals are only partly busy, so the rate is taken between
        the first poll that saw events and the one that saw all n, with the
        last interval's end interpolated at the rate of the one before."""
        busy = [(t, c) for t, c in self.samples if c > 0]
        if len(busy) < 2:
            return float("nan")
        t_a, c_a = busy[0]
        t_b, c_b = busy[-1]
        if len(busy) >= 3 and c_b >= n:
            t_p, c_p = busy[-2]
            t_q, c_q = busy[-3]
            inner = (c_p - c_q) / (t_p - t_q) if t_p > t_q and c_p > c_q else 0.0
            if inner > 0:
                t_b = min(t_b, t_p + (n - c_p) / inner)
        return (c_b - c_a) / (t_b - t_a) if t_b > t_a else float("nan")


def wait_processed(
    workers: list[Worker],
    n: float,
    timeout_s: float,
    interval_s: float = 0.2,
    stall_s: float = 120.0,
) -> Progress:
    """Poll until the workers together have counted n events. Fails at
    timeout_s, or sooner when the count has not moved for stall_s (a worker
    that skipped records never reaches n: no reason to wait the whole run)."""
    prog = Progress()
    t0 = time.perf_counter()
    last, moved = -1.0, t0
    while True:
        done = sum(max(0.0, w.processed()) for w in workers)
        now = time.perf_counter()
        prog.samples.append((now - t0, done))
        if done >= n:
            return prog
        if done != last:
            last, moved = done, now
        if now - t0 > timeout_s or now - moved > stall_s:
            why = "" if now - t0 > timeout_s else f", none for the last {now - moved:.0f}s"
            raise HarnessError(
                f"only {done:.0f} of {n:.0f} events processed in {now - t0:.0f}s{why}"
            )
        time.sleep(interval_s)


def group_offsets(
    bootstrap: str, app_id: str, topics: BenchTopics
) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
    """(committed, end) offsets of the app's group over its input topics and
    its internal ones (route, observations; not the changelogs, which no
    consumer group commits)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        if hasattr(admin, "list_group_offsets"):  # kafka-python 3 renamed the call
            raw = dict(admin.list_group_offsets(app_id).get(app_id, {}))
        else:
            raw = dict(admin.list_consumer_group_offsets(app_id))
        committed = {(tp.topic, tp.partition): max(0, meta.offset) for tp, meta in raw.items()}
        names = {topics.tickets, topics.surveys} | {
            t
            for t in consumer.topics()
            if t.startswith(app_id + "-") and not t.endswith("-changelog") and "__" not in t
        }
        tps = [
            TopicPartition(t, p)
            for t in sorted(names)
            for p in consumer.partitions_for_topic(t) or ()
        ]
        ends = {(tp.topic, tp.partition): int(o) for tp, o in consumer.end_offsets(tps).items()}
        return committed, ends
    finally:
        consumer.close()
        admin.close()


def wait_lag_zero(
    bootstrap: str, app_id: str, topics: BenchTopics, workers: list[Worker], timeout_s: float
) -> float:
    """Seconds until the group has committed past everything written so far,
    internal records included: three rounds (input, then route, then
    observations), each against a snapshot of end offsets, because timer
    ticks keep arriving on the internal topics."""
    t0 = time.perf_counter()
    for _round in range(3):
        _, target = group_offsets(bootstrap, app_id, topics)
        while True:
            committed, _ = group_offsets(bootstrap, app_id, topics)
            behind = {tp: end - committed.get(tp, 0) for tp, end in target.items()}
            if all(v <= 0 for v in behind.values()):
                break
            if time.perf_counter() - t0 > timeout_s:
                late = {f"{t}[{p}]": v for (t, p), v in sorted(behind.items()) if v > 0}
                raise HarnessError(f"lag not zero within {timeout_s:.0f}s: {late}")
            for w in workers:
                w.check_alive()
            time.sleep(0.5)
    return time.perf_counter() - t0


def settle(workers: list[Worker], quiet_s: float = 2.0, timeout_s: float = 60.0) -> None:
    """Wait until the table-derived numbers stop changing (writes flushed)."""
    last: Any = None
    since = time.perf_counter()
    t0 = since
    while time.perf_counter() - t0 < timeout_s:
        now = [state_numbers(w.samples()) for w in workers]
        if now != last:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet_s:
            return
        time.sleep(0.5)


#: Families published from table state (they survive a restart), as opposed
#: to the worker's process-local pipeline counters.
STATE_COUNTERS = (
    "cx_nps_responses_total",
    "cx_csat_responses_total",
    "cx_ces_responses_total",
    "cx_tickets_created_total",
    "cx_tickets_resolved_total",
    "cx_tickets_reopened_total",
    "cx_first_response_seconds_count",
    "cx_first_response_seconds_sum",
    "cx_resolution_seconds_count",
    "cx_resolution_seconds_sum",
    "cx_tickets_open",
)
WINDOW_COUNTS = (
    "cx_nps_window_responses",
    "cx_csat_window_responses",
    "cx_fcr_window_tickets",
    "cx_first_response_window_seconds_count",
    "cx_resolution_window_seconds_count",
)


def state_numbers(samples: Samples, skip_windows: frozenset[str] = frozenset()) -> Samples:
    """Counters and window counts from table state: what a restarted worker
    must publish again."""
    return {
        (name, labels): v
        for (name, labels), v in samples.items()
        if name in STATE_COUNTERS
        or (name in WINDOW_COUNTS and dict(labels).get("window") not in skip_windows)
    }


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()
