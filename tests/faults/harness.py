"""Real parts for the fault suite: brokers, worker processes, lag, scrapes.

Everything here talks to cxstream through its public surface only: the
``cxstream worker`` process and its flags, ``/metrics`` and ``/healthz``, the
alert and dead-letter topics, and the consumer group's committed offsets.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from tests.faults import oracle
from tests.faults.events import BOOM_PREFIX, Rec
from tests.support import REPO, Topics, free_port, read_topic

KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
Samples = dict[oracle.Key, float]

#: Extra worker flags for every worker the suite starts (shell words), e.g. a
#: stall watchdog's timeout. Read from the environment of the test run.
EXTRA_ENV = "FAULTS_WORKER_ARGS"
#: Set in a worker's environment by the suite: the launcher makes events with
#: this event id prefix raise inside the pipeline (a processing error).
BOOM_ENV = "FAULTS_BOOM_PREFIX"
#: Set by the suite: the launcher pauses Faust's table recovery this many
#: seconds between its changelog seek and its resume.
SEEK_DELAY_ENV = "FAULTS_RECOVERY_SEEK_DELAY_S"

STATE_NAMES = {
    "cx_nps_responses_total",
    "cx_csat_responses_total",
    "cx_ces_responses_total",
    "cx_tickets_created_total",
    "cx_tickets_resolved_total",
    "cx_tickets_reopened_total",
    "cx_tickets_open",
    "cx_first_response_seconds_count",
    "cx_first_response_seconds_sum",
    "cx_resolution_seconds_count",
    "cx_resolution_seconds_sum",
}
WINDOW_NAMES = {
    "cx_nps_window_responses",
    "cx_csat_window_responses",
    "cx_ces_window_responses",
    "cx_fcr_window_tickets",
    "cx_first_response_window_seconds_count",
    "cx_first_response_window_seconds_sum",
    "cx_resolution_window_seconds_count",
    "cx_resolution_window_seconds_sum",
}
PROCESS_NAMES = {"cx_events_total", "cx_events_invalid_total", "cx_events_late_total"}
RATIO_NAMES = {"cx_nps_score", "cx_csat_ratio", "cx_ces_score"}


# -- broker --------------------------------------------------------------------


class Broker:
    """A broker of the suite's own (deploy/kafka-local/kafka.sh) on free ports,
    so it can be killed and restarted on the same data."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.cport = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _sh(self, *args: str) -> None:
        r = subprocess.run(
            [str(KAFKA_SH), *args, "--dir", str(self.data)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if r.returncode != 0:
            raise AssertionError(f"kafka.sh {args[0]} failed:\n{r.stdout}\n{r.stderr}")

    def start(self) -> None:
        # kafka.sh waits for "Kafka Server started" in server.log, which a
        # restart finds from the previous run: wait for a real answer too.
        self._sh("start", "--port", str(self.port), "--controller-port", str(self.cport))
        self.wait_up()

    def wait_up(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except Exception as exc:
                last = exc
                time.sleep(0.5)
        raise AssertionError(f"broker {self.bootstrap} not up in {timeout}s: {last!r}")

    def pid(self) -> int | None:
        try:
            return int((self.data / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL, no clean shutdown (the process group: bash and java)."""
        pid = self.pid()
        assert pid is not None, "no broker pid"
        os.killpg(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        (self.data / "kafka.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        self._sh("stop")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# -- workers -------------------------------------------------------------------


class Worker:
    """One real ``cxstream worker`` process (``python -m streams worker``), or
    the same through tests/faults/launcher.py when a fault is to be injected
    (a processing error, or ``faults``: the launcher's environment settings)."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        topics: Topics,
        data_dir: Path,
        partitions: int,
        extra: Sequence[str] = (),
        inject: bool = False,
        faults: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = data_dir / f"{name}-{self.port}.log"
        module = "tests.faults.launcher" if inject or faults else "streams"
        cmd = [
            sys.executable,
            "-m",
            module,
            "worker",
            "--bootstrap",
            bootstrap,
            "--web-port",
            str(self.port),
            "--web-host",
            "127.0.0.1",
            "--data-dir",
            str(data_dir / f"state-{name}"),
            "--partitions",
            str(partitions),
            "--tick-interval",
            "1s",
            *topics.flags(),
            *extra,
            *shlex.split(os.environ.get(EXTRA_ENV, "")),
        ]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CX_") and k not in (BOOM_ENV, SEEK_DELAY_ENV)
        }
        if inject:
            env[BOOM_ENV] = BOOM_PREFIX
        env.update(faults or {})
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
            start_new_session=True,
        )  # fmt: skip
        self.started = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bytes(resp.read())

    def health(self) -> dict[str, Any] | None:
        try:
            return dict(orjson.loads(self.get("/healthz")))
        except Exception:
            return None

    def scrape(self) -> Samples:
        return parse(self.get("/metrics").decode())

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.alive:
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait(15)
        self._log.close()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait (SIGKILL after `timeout`): the exit code."""
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()
        return int(self.proc.returncode)


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


# -- the cluster under test ----------------------------------------------------


@dataclass
class Timing:
    """Time to exact after one fault: from the fault's end (the restart, the
    broker back, or the kill when nothing is restarted) to the first scrape
    that equals the oracle; and, for the record, when lag reached zero."""

    fault: str
    to_exact_s: float
    to_lag_zero_s: float


@dataclass
class Cluster:
    bootstrap: str
    topics: Topics
    data: Path
    partitions: int = 4
    extra: Sequence[str] = ()
    inject: bool = False
    faults: Mapping[str, str] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    retired: list[Worker] = field(default_factory=list)
    restarted: set[str] = field(default_factory=set)
    timings: list[Timing] = field(default_factory=list)
    sent: list[Rec] = field(default_factory=list)
    _producer: KafkaProducer | None = None

    # workers

    def start(self, name: str) -> Worker:
        if name in self.workers:
            self.retired.append(self.workers[name])
            self.restarted.add(name)
        w = Worker(
            name,
            self.bootstrap,
            self.topics,
            self.data,
            self.partitions,
            self.extra,
            self.inject,
            self.faults,
        )
        self.workers[name] = w
        return w

    def live(self) -> list[Worker]:
        return [w for w in self.workers.values() if w.alive]

    def drop(self, name: str) -> None:
        """A worker that was killed and is not coming back."""
        self.retired.append(self.workers.pop(name))
        self.restarted.add(name)

    def wait_settled_group(self, timeout: float = 180.0) -> None:
        """Every live worker answers /healthz, is not rebalancing, has its
        tables recovered, and the live workers own all partitions between them."""

        def settled() -> bool:
            owned: list[int] = []
            for w in self.live():
                h = w.health()
                if h is None or h.get("rebalancing") or h.get("recovered") is False:
                    return False
                owned += h.get("active_partitions", [])
            return sorted(owned) == list(range(self.partitions))

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for w in self.workers.values():
                if not w.alive:
                    raise AssertionError(f"{w.name} exited {w.proc.returncode}:\n{w.log_tail()}")
            if settled():
                return
            time.sleep(0.5)
        raise AssertionError(f"group not settled in {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in self.workers.values())

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(10)
        for w in list(self.workers.values()):
            if w.alive:
                w.stop(30)

    # producing

    @property
    def producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self.bootstrap, acks="all", linger_ms=5, retries=10
            )
        return self._producer

    def produce(self, recs: Iterable[Rec], rate: float = 0.0, flush: bool = True) -> None:
        """Send records in order (at `rate` records/s if given) and flush."""
        t0 = time.monotonic()
        for i, rec in enumerate(recs):
            topic = self.topics.tickets if rec.source == "tickets" else self.topics.surveys
            self.producer.send(topic, key=rec.key, value=rec.value)
            self.sent.append(rec)
            if rate and i % 25 == 24:
                ahead = (i + 1) / rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
        if flush:
            self.producer.flush(60)

    # lag

    def offsets(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        """(committed, end) offsets of every partition the group reads: the
        input topics, and the internal topics (Faust names them after the app
        id; changelogs are read by table recovery, not by the group)."""
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10_000)
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        try:
            committed = {
                tp: max(0, meta.offset)
                for tp, meta in _group_offsets(admin, self.topics.app_id).items()
            }
            names = {tp.topic for tp in committed} | {self.topics.tickets, self.topics.surveys}
            prefix = self.topics.app_id + "-"
            names |= {
                t
                for t in consumer.topics()
                if t.startswith(prefix) and not t.endswith("-changelog") and "__" not in t
            }
            tps = [
                TopicPartition(t, p)
                for t in sorted(names)
                for p in consumer.partitions_for_topic(t) or ()
            ]
            return committed, dict(consumer.end_offsets(tps))
        finally:
            consumer.close()
            admin.close()

    def lag(self) -> dict[TopicPartition, int]:
        committed, ends = self.offsets()
        return {tp: end - committed.get(tp, 0) for tp, end in ends.items()}

    def wait_lag_zero(self, timeout: float) -> float:
        """Until the group has committed past everything written so far,
        including the internal records that input caused (three rounds:
        input, then route, then observations). Timer ticks keep arriving on
        internal topics, so each round targets a snapshot of end offsets."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        for _round in range(3):
            _, target = self.offsets()
            while True:
                committed, _ = self.offsets()
                behind = {tp: end - committed.get(tp, 0) for tp, end in target.items()}
                if all(v <= 0 for v in behind.values()):
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"lag not zero in {timeout}s: {behind}\n{self.logs()}")
                self._check_alive()
                time.sleep(0.5)
        return time.monotonic() - t0

    def _check_alive(self) -> None:
        for w in self.workers.values():
            if not w.alive:
                raise AssertionError(f"{w.name} exited {w.proc.returncode}:\n{w.log_tail()}")

    # observing

    def observe(self) -> tuple[Samples, list[str]]:
        """Sum of every live worker's samples; problems: a window series
        published by two workers (contract section 6: exactly one)."""
        total: Samples = defaultdict(float)
        owner: dict[oracle.Key, str] = {}
        problems: list[str] = []
        for w in self.live():
            for key, v in w.scrape().items():
                name = key[0]
                if name in WINDOW_NAMES or name in RATIO_NAMES:
                    if key in owner:
                        problems.append(f"{key} published by {owner[key]} and {w.name}")
                    owner[key] = w.name
                total[key] += v
        return dict(total), problems

    def diff(self, groups: Sequence[str] = ("state", "ratios")) -> list[str]:
        """Every difference between the live workers and the oracle over what
        was sent so far (empty: exact)."""
        now = time.time()
        boom = BOOM_PREFIX if self.inject else None
        exp = oracle.expect(self.sent, now, boom)
        edge = oracle.edge_violations(exp.placed_us, now)
        if edge:
            raise AssertionError(f"{edge} placements near a window edge: the run took too long")
        seen, problems = self.observe()
        return problems + compare(exp, seen, groups)

    def wait_exact(
        self,
        fault: str,
        since: float,
        timeout: float = 180.0,
        groups: Sequence[str] = ("state", "ratios"),
    ) -> Timing:
        """Poll until the live workers equal the oracle; record the timing."""
        self.wait_lag_zero(timeout)
        lag_at = time.monotonic() - since
        diffs: list[str] = []
        while time.monotonic() - since < timeout:
            self._check_alive()
            try:
                diffs = self.diff(groups)
            except OSError as exc:  # a worker's web server not up yet
                diffs = [repr(exc)]
            if not diffs:
                return Timing(fault, time.monotonic() - since, lag_at)
            time.sleep(0.5)
        shown = "\n  ".join(diffs[:30])
        raise AssertionError(
            f"not exact {timeout:.0f}s after {fault} ({len(diffs)} differences):\n  {shown}"
        )

    # output topics

    def alerts(self) -> list[dict[str, Any]]:
        return [
            orjson.loads(r.value)
            for r in _by_offset(read_topic(self.bootstrap, self.topics.alerts))
        ]

    def deadletters(self) -> list[Any]:
        return read_topic(self.bootstrap, self.topics.deadletter)


def _group_offsets(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    """Committed offsets of a group (kafka-python 3 renamed the call). Right
    after a broker restart the group's coordinator may still be loading:
    retriable errors are retried for a while, as a client would."""
    deadline = time.monotonic() + 30.0
    while True:
        try:
            if hasattr(admin, "list_group_offsets"):
                return dict(admin.list_group_offsets(group).get(group, {}))
            return dict(admin.list_consumer_group_offsets(group))
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _by_offset(records: list[Any]) -> list[Any]:
    return sorted(records, key=lambda r: (r.partition, r.offset))


def compare(exp: oracle.Expected, seen: Samples, groups: Sequence[str]) -> list[str]:
    names = {
        "state": STATE_NAMES | WINDOW_NAMES,
        "process": PROCESS_NAMES,
        "ratios": RATIO_NAMES,
    }
    out: list[str] = []
    for group in groups:
        want = getattr(exp, group)
        got = {k: v for k, v in seen.items() if k[0] in names[group]}
        for key in sorted(set(want) | set(got), key=repr):
            w, g = want.get(key), got.get(key)
            if group == "ratios":
                ok = w is not None and g is not None and abs(w - g) <= 1e-9 * max(1.0, abs(w))
            else:
                ok = (w or 0.0) == (g or 0.0)
            if not ok:
                out.append(f"{key[0]}{{{_fmt(key[1])}}}: oracle {w}, workers {g}")
    return out


def _fmt(labels: frozenset[tuple[str, str]]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels))


def check_alerts(
    docs: list[dict[str, Any]], nps_low: set[tuple[str, str]], must_fire: tuple[str, str]
) -> list[str]:
    """No alert repeated: per fingerprint, firing and resolved alternate,
    starting with firing; CxNpsLow is firing (last event) exactly for the
    oracle's keys, and fired exactly once for the key designed to fire it."""
    problems: list[str] = []
    by_fp: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in docs:
        by_fp[d["fingerprint"]].append(d)
    firing_now: set[tuple[str, str]] = set()
    designed = 0
    for fp, evs in by_fp.items():
        statuses = [e["status"] for e in evs]
        want = ["firing" if i % 2 == 0 else "resolved" for i in range(len(statuses))]
        if statuses != want:
            problems.append(f"{evs[0]['labels'].get('alertname')} {fp}: {statuses}")
        labels = evs[0]["labels"]
        if labels.get("alertname") == "CxNpsLow" and labels.get("window") == "24h":
            dims = (labels.get("channel", ""), labels.get("team", ""))
            if statuses[-1] == "firing":
                firing_now.add(dims)
            if dims == must_fire:
                designed += statuses.count("firing")
    if firing_now != nps_low:
        problems.append(f"CxNpsLow firing for {sorted(firing_now)}, oracle {sorted(nps_low)}")
    if designed != 1:
        problems.append(f"CxNpsLow fired {designed} times for {must_fire}, expected once")
    return problems


def check_deadletters(
    records: list[Any], sent: Sequence[Rec], topics: Topics, copies_ok: bool
) -> list[str]:
    """The dead-letter topic holds exactly the poison set: each rejected
    input record once (by its source topic/partition/offset), with its
    original bytes and the reason the contract gives. `copies_ok`: after a
    crash, at-least-once may dead-letter the same input record twice."""
    problems: list[str] = []
    want: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    for rec in sent:
        if rec.reason is not None:
            topic = topics.tickets if rec.source == "tickets" else topics.surveys
            want[(topic, rec.value)].append(rec.reason)
    got: dict[tuple[str, bytes], list[str]] = defaultdict(list)
    provenance: dict[tuple[bytes, bytes, bytes], int] = defaultdict(int)
    for r in records:
        h = {k: v for k, v in r.headers}
        prov = (
            h.get("cx-source-topic", b""),
            h.get("cx-source-partition", b""),
            h.get("cx-source-offset", b""),
        )
        provenance[prov] += 1
        if provenance[prov] > 1:
            continue
        got[(h.get("cx-source-topic", b"").decode(), r.value)].append(
            h.get("cx-error-reason", b"").decode()
        )
    copies = sum(n - 1 for n in provenance.values())
    if copies and not copies_ok:
        problems.append(f"{copies} dead-letter copies of the same input record")
    for key in set(want) | set(got):
        if sorted(want.get(key, [])) != sorted(got.get(key, [])):
            problems.append(
                f"dead letter {key[0]} {key[1][:60]!r}: want {want.get(key)}, got {got.get(key)}"
            )
    return problems


def wait_for(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
