"""Liveness on a real broker: /readyz, the lag and recovery gauges, a
graceful SIGTERM restart that applies nothing twice, and a broker outage
that the worker either rides out or answers by exiting non-zero within its
stall timeout: it never hangs alive but idle."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import (
    REPO,
    Topics,
    WorkerProcess,
    free_port,
    produce,
    samples,
    total,
    utc,
    value,
    wait_for,
)

pytestmark = pytest.mark.integration

KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
STALL_S = 40  # the outage test's --stall-timeout: above a broker restart (10-20 s on 2 busy cores)


def _surveys(prefix: str, n: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"event_id": f"{prefix}{i}", "type": "survey.nps", "occurred_at": utc(now - 60),
         "score": (i * 7) % 11, "channel": "web"}
        for i in range(n)
    ]  # fmt: skip


def _nps_total(w: WorkerProcess) -> float:
    return total(samples(w.scrape()), "cx_nps_responses_total")


def _status(w: WorkerProcess, path: str) -> int | None:
    try:
        with urllib.request.urlopen(w.url + path, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None  # not listening yet


def _readiness_until_ready(w: WorkerProcess, timeout: float = 120) -> list[int]:
    """Poll /readyz from the start; the distinct answers in order."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert w.proc.poll() is None, w.log_tail()
        code = _status(w, "/readyz")
        if code is not None and (not seen or seen[-1] != code):
            seen.append(code)
        if code == 200:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"never ready: {seen}\n{w.log_tail()}")


def test_sigterm_restart_applies_nothing_twice(
    kafka_bootstrap: str, topics: Topics, workdir: Path
) -> None:
    first = WorkerProcess(kafka_bootstrap, topics, workdir / "a")
    try:
        seen = _readiness_until_ready(first)
        assert seen[0] == 503 and seen[-1] == 200, seen  # not ready before recovery
        assert first.health()["recovered"] is True  # type: ignore[index]
        produce(kafka_bootstrap, topics.surveys, _surveys("a", 40))
        wait_for(lambda: _nps_total(first) == 40, 90, what="40 responses")
        smp = samples(first.scrape())
        assert value(smp, "cx_state_recovering") == 0

        # The watchdog publishes lag per assigned partition of every topic it
        # reads; the input topics' lag drains to 0 once the events are in.
        def input_lag() -> float | None:
            smp = samples(first.scrape())
            topics_seen = {dict(ls)["topic"] for n, ls in smp if n == "cx_consumer_lag"}
            if not {topics.surveys, topics.tickets, f"{topics.app_id}-route"} <= topics_seen:
                return None
            return total(smp, "cx_consumer_lag", topic=topics.surveys)

        wait_for(lambda: input_lag() == 0, 30, what="lag gauges, 0 on the surveys topic")
        t0 = time.monotonic()
        first.stop()  # SIGTERM
        print(f"SIGTERM: exit {first.proc.returncode} after {time.monotonic() - t0:.1f} s")
        assert first.proc.returncode == 0, first.log_tail()
    finally:
        first.kill()

    second = WorkerProcess(kafka_bootstrap, topics, workdir / "b")
    try:
        second.wait_ready()
        _readiness_until_ready(second)
        produce(kafka_bootstrap, topics.surveys, _surveys("b", 25))
        wait_for(lambda: _nps_total(second) == 65, 90, what="65 responses in all")
        time.sleep(2)  # any late re-application would land now
        smp = samples(second.scrape())
        # Window state came back from the changelog, once; the committed input
        # offsets were honoured: the restarted worker read only the new events.
        assert total(smp, "cx_nps_responses_total") == 65
        assert total(smp, "cx_nps_window_responses", window="1h") == 65
        assert value(smp, "cx_events_total", source="surveys", outcome="accepted") == 25
        assert value(smp, "cx_events_total", source="surveys", outcome="duplicate") == 0
    finally:
        second.stop()


@dataclass
class OwnBroker:
    port: int
    cport: int
    data: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _sh(self, *args: str) -> None:
        result = subprocess.run(
            [str(KAFKA_SH), *args, "--dir", str(self.data)], capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr

    def start(self) -> None:
        self._sh("start", "--port", str(self.port), "--controller-port", str(self.cport))

    def stop(self) -> None:
        self._sh("stop")


@pytest.fixture()
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    broker = OwnBroker(free_port(), free_port(), tmp_path / "kafka")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_broker_outage_is_ridden_out_or_ends_the_process(
    own_broker: OwnBroker, topics: Topics, workdir: Path
) -> None:
    stall = ["--stall-timeout", f"{STALL_S}s"]
    worker = WorkerProcess(own_broker.bootstrap, topics, workdir / "w", extra=stall)
    try:
        worker.wait_ready()
        _readiness_until_ready(worker)
        produce(own_broker.bootstrap, topics.surveys, _surveys("a", 10))
        wait_for(lambda: _nps_total(worker) == 10, 90, what="10 responses")

        # A short outage (clean stop and start, shorter than the stall timeout):
        # the worker stays up and resumes.
        t0 = time.monotonic()
        own_broker.stop()
        own_broker.start()
        print(f"short outage: broker back after {time.monotonic() - t0:.1f} s")
        produce(own_broker.bootstrap, topics.surveys, _surveys("b", 10))
        wait_for(lambda: _nps_total(worker) == 20, 120, what="20 responses after the outage")
        # The watchdog has seen it well again (its stall clock is reset).
        wait_for(lambda: (worker.health() or {}).get("stalled_s") == 0, 30, what="stalled_s 0")
        assert worker.proc.poll() is None

        # A long outage: the worker must exit non-zero within the stall
        # timeout (plus one check interval and start-up slack), never idle on.
        t0 = time.monotonic()
        own_broker.stop()
        print(f"long outage: broker stopped in {time.monotonic() - t0:.1f} s")
        try:
            worker.proc.wait(STALL_S + 20)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"worker still alive {STALL_S + 20} s into the outage:\n{worker.log_tail()}"
            )
        took = time.monotonic() - t0
        print(f"long outage: worker exited {worker.proc.returncode} after {took:.1f} s")
        assert worker.proc.returncode == 3, worker.log_tail()
        assert "stalled for" in worker.log_path.read_text()
    finally:
        worker.kill()

    # The broker returns; a restarted worker picks up where the group left off.
    own_broker.start()
    again = WorkerProcess(own_broker.bootstrap, topics, workdir / "w2", extra=stall)
    try:
        again.wait_ready()
        produce(own_broker.bootstrap, topics.surveys, _surveys("c", 10))
        wait_for(lambda: _nps_total(again) == 30, 120, what="30 responses after the restart")
        time.sleep(2)
        assert _nps_total(again) == 30
    finally:
        again.stop()
