"""The fault suite: real workers, a real broker, faults, and an offline oracle.

Every scenario sends a seeded log (tests/faults/events.py), injects its
faults mid-stream, and after each fault polls the live workers' /metrics
until every counter and window equals the oracle (tests/faults/oracle.py)
over what was sent so far: that moment, measured from the fault's end, is
the *time to exact* the suite prints. At the end: the alert topic repeats
nothing, and the dead-letter topic holds exactly the poison records.

Which counters can be compared where (checked by this suite):
- ticket and survey counters, ``cx_tickets_open`` and every window live in
  changelog-backed tables: compared as sums over the live workers after
  every fault, restarts included;
- ``cx_events_total``, ``cx_events_invalid_total``, ``cx_events_late_total``
  count what one worker *process* saw and start from zero when it restarts:
  compared exactly only in runs where no worker process was restarted or lost.

Small mode (marked ``integration``, in the default run): one seed of
scenarios 1, 2, 4, 8, 10 and 11. Full mode: ``pytest -m faults_full tests/faults``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from tests.faults import events
from tests.faults.conftest import REPORT
from tests.faults.harness import (
    SEEK_DELAY_ENV,
    Broker,
    Cluster,
    check_alerts,
    check_deadletters,
)
from tests.support import Topics

PARTITIONS = 4
SMALL = {"seeds": [1], "tickets": 400}
FULL = {"seeds": [11, 12], "tickets": 500}
#: a fault: does it, returns (its name, the moment it ended)
Fault = Callable[[Cluster], tuple[str, float]]


def _create_topics(bootstrap: str, topics: Topics) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = [topics.tickets, topics.surveys, topics.alerts, topics.deadletter]
        admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        admin.close()


class Run:
    """One seeded run: a log, a cluster of workers, faults, checks."""

    def __init__(
        self,
        request: pytest.FixtureRequest,
        bootstrap: str,
        data: Path,
        seed: int,
        tickets: int,
        workers: int = 1,
        inject: bool = False,
        history: int = 0,
        extra: tuple[str, ...] = (),
        cold: bool = False,
        faults: dict[str, str] | None = None,
    ) -> None:
        self.request = request
        self.seed = seed
        self.rng = random.Random(seed)
        self.topics = Topics()
        _create_topics(bootstrap, self.topics)
        self.log = events.build(
            seed, time.time(), tickets, boom=3 if inject else 0, history=history
        )
        self.cluster = Cluster(
            bootstrap, self.topics, data, PARTITIONS, extra, inject, faults or {}
        )
        self.notes: list[str] = []
        self.started = time.monotonic()
        self.cold = cold
        if cold:
            # The whole main log is waiting before any worker exists: they
            # start together on a new group, rebalancing while they work.
            self.cluster.produce(self.log.main)
            self.started = time.monotonic()
            for i in range(workers):
                self.cluster.start(f"w{i}")
            return
        for i in range(workers):
            self.cluster.start(f"w{i}")
        self.cluster.wait_settled_group()

    def drive(self, faults: list[Fault], rate: float = 400.0) -> None:
        """Send `main` at `rate` with the faults at random points between 15 %
        and 85 % of it; after each, wait until exact over what was sent."""
        main = self.log.main
        points = sorted(
            self.rng.sample(range(len(main) * 15 // 100, len(main) * 85 // 100), len(faults))
        )
        i = 0
        for point, fault in zip(points, faults, strict=True):
            self.cluster.produce(main[i:point], rate)
            i = point
            time.sleep(self.rng.uniform(0, 1.5))  # the workers are mid-batch
            name, since = fault(self.cluster)
            self.cluster.timings.append(self.cluster.wait_exact(name, since))
        self.cluster.produce(main[i:], rate)
        # Not faults, for comparison: from the last record sent to exact.
        self.cluster.timings.append(self.cluster.wait_exact("main sent", time.monotonic()))
        self.cluster.produce(self.log.tail)
        self.cluster.timings.append(self.cluster.wait_exact("tail sent", time.monotonic()))

    def check(self) -> None:
        """The end-of-run checks: counters per process where comparable,
        alerts, dead letters."""
        c = self.cluster
        problems: list[str] = []
        if c.restarted:
            self.notes.append("cx_events_* not compared (a worker process restarted)")
        elif self.cold:
            # Workers joining mid-batch make the group move on while an
            # owner's last commit is still in flight; that commit is refused
            # and its records are delivered again (at least once): they count
            # again per process and may be dead-lettered twice.
            self.notes.append("cx_events_* not compared (rebalances while nothing was committed)")
        else:
            problems += c.diff(("process",))
        from tests.faults import oracle

        exp = oracle.expect(c.sent, time.time(), events.BOOM_PREFIX if c.inject else None)
        problems += check_alerts(c.alerts(), exp.nps_low, events.ALERT_DIMS)
        problems += check_deadletters(
            c.deadletters(), c.sent, self.topics, copies_ok=bool(c.restarted) or self.cold
        )
        assert not problems, "\n".join(problems)

    def finish(self, outcome: str) -> None:
        REPORT.append(
            (self.request.node.name, outcome, list(self.cluster.timings), "; ".join(self.notes))
        )
        self.cluster.close()


@pytest.fixture()
def run_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def make(bootstrap: str, seed: int, tickets: int, **kw: object) -> Run:
        r = Run(request, bootstrap, tmp_path / f"run{len(runs)}", seed, tickets, **kw)  # type: ignore[arg-type]
        runs.append(r)
        return r

    yield make
    failed = getattr(request.node, "rep_call_failed", None)
    for r in runs:
        r.finish("failed" if failed else "passed")


# -- faults --------------------------------------------------------------------


def kill9_restart(name: str) -> Fault:
    def fault(c: Cluster) -> tuple[str, float]:
        c.workers[name].kill()
        c.start(name)
        return f"kill -9 {name}, restart", time.monotonic()

    return fault


def sigterm_restart(name: str, settle: bool = False) -> Fault:
    def fault(c: Cluster) -> tuple[str, float]:
        code = c.workers[name].stop()
        assert code == 0, f"SIGTERM: {name} exited {code}:\n{c.workers[name].log_tail()}"
        c.start(name)
        if settle:
            c.wait_settled_group()
        return f"SIGTERM {name}, restart", time.monotonic()

    return fault


def kill9_gone(name: str) -> Fault:
    def fault(c: Cluster) -> tuple[str, float]:
        c.workers[name].kill()
        c.drop(name)
        return f"kill -9 {name}, not restarted", time.monotonic()

    return fault


def broker_fault(broker: Broker, how: str, down_s: float = 0.0) -> Fault:
    """Kill (SIGKILL) or stop the broker, keep it down `down_s`, start it on
    the same data. A worker may ride it out or exit non-zero (then it is
    restarted); it must never stay alive and idle (wait_exact times out)."""

    def fault(c: Cluster) -> tuple[str, float]:
        if how == "kill":
            broker.kill()
        else:
            broker.stop()
        time.sleep(down_s)
        broker.start()
        back = time.monotonic()
        exited: list[str] = []
        for name, w in list(c.workers.items()):
            if not w.alive:
                assert w.proc.returncode != 0, f"{name} exited 0 after the broker fault"
                exited.append(f"{name} exited {w.proc.returncode}")
                c.start(name)
        label = f"broker {how}" + (f" {down_s:.0f}s down" if down_s else "") + ", restart"
        if exited:
            label += " (" + ", ".join(exited) + "; restarted)"
        return label, back

    return fault


# -- scenarios -----------------------------------------------------------------


def scenario_baseline(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    r = make(bootstrap, seed, tickets, workers=2)
    r.drive([])
    r.check()


def scenario_kill9_thrice(
    make: Callable[..., Run], bootstrap: str, seed: int, tickets: int
) -> None:
    r = make(bootstrap, seed, tickets, workers=2)
    r.drive([kill9_restart(r.rng.choice(["w0", "w1"])) for _ in range(3)])
    r.check()


def scenario_sigterm(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    r = make(bootstrap, seed, tickets, workers=2)
    r.drive([sigterm_restart("w0")])
    r.check()


def scenario_takeover(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    r = make(bootstrap, seed, tickets, workers=2)
    r.drive([kill9_gone("w1")])
    assert [w.name for w in r.cluster.live()] == ["w0"]
    r.check()


def scenario_takeover_slow_seek(
    make: Callable[..., Run], bootstrap: str, seed: int, tickets: int
) -> None:
    # The takeover again, with the survivor's table recovery pausing between
    # seeking its changelog partitions and resuming them: a fetch waiting in
    # the consumer's thread since before the rebalance took those records in
    # the pause and dropped them, and the recovery waited forever (without
    # guard_fetch_partitions, streams/pipeline/offsets.py).
    r = make(bootstrap, seed, tickets, workers=2, faults={SEEK_DELAY_ENV: "0.3"})
    r.drive([kill9_gone("w1")])
    assert [w.name for w in r.cluster.live()] == ["w0"]
    r.check()


def scenario_rolling(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    r = make(bootstrap, seed, tickets, workers=3)
    r.drive([sigterm_restart(n, settle=True) for n in ("w0", "w1", "w2")])
    r.check()


def scenario_poison(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    r = make(bootstrap, seed, tickets, workers=2, inject=True)
    r.drive([])
    r.check()


def scenario_history(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    # Sweeps every 2 s, so expiry runs over the weeks-old tickets while the
    # test watches: it must neither drop their numbers nor forget their ids.
    r = make(
        bootstrap, seed, tickets // 4, workers=2, history=tickets, extra=("--sweep-interval", "2s")
    )
    r.drive([])
    time.sleep(5)  # two more sweeps
    r.cluster.timings.append(r.cluster.wait_exact("after sweeps", time.monotonic()))
    r.check()


def scenario_cold_start(make: Callable[..., Run], bootstrap: str, seed: int, tickets: int) -> None:
    # Three workers start together on a new consumer group over a pre-filled
    # log: rebalances happen while partitions (internal ones above all) have
    # no committed offset yet, where Faust used to skip records it had
    # fetched and dropped (streams/pipeline/offsets.py).
    r = make(bootstrap, seed, tickets * 3, workers=3, cold=True)
    r.cluster.timings.append(r.cluster.wait_exact("3 workers cold start", r.started))
    r.cluster.produce(r.log.tail)
    r.cluster.timings.append(r.cluster.wait_exact("tail sent", time.monotonic()))
    r.check()


SMALL_SCENARIOS = {
    "1-baseline": scenario_baseline,
    "2-kill9-thrice": scenario_kill9_thrice,
    "4-takeover": scenario_takeover,
    "8-poison": scenario_poison,
    "10-cold-start": scenario_cold_start,
    "11-takeover-slow-seek": scenario_takeover_slow_seek,
}
FULL_SCENARIOS = {
    **SMALL_SCENARIOS,
    "3-sigterm": scenario_sigterm,
    "5-rolling": scenario_rolling,
    "9-history": scenario_history,
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(SMALL_SCENARIOS))
def test_small(name: str, kafka_bootstrap: str, run_factory: Callable[..., Run]) -> None:
    SMALL_SCENARIOS[name](run_factory, kafka_bootstrap, SMALL["seeds"][0], SMALL["tickets"])


@pytest.mark.faults_full
@pytest.mark.parametrize("seed", FULL["seeds"])
@pytest.mark.parametrize("name", sorted(FULL_SCENARIOS))
def test_full(name: str, seed: int, kafka_bootstrap: str, run_factory: Callable[..., Run]) -> None:
    FULL_SCENARIOS[name](run_factory, kafka_bootstrap, seed, FULL["tickets"])


@pytest.mark.faults_full
@pytest.mark.parametrize("seed", FULL["seeds"])
def test_full_broker_restart(
    seed: int, own_broker: Broker, run_factory: Callable[..., Run]
) -> None:
    """6: broker SIGKILL and restart mid-stream, then a clean stop and restart."""
    r = run_factory(own_broker.bootstrap, seed, FULL["tickets"], workers=2)
    r.drive([broker_fault(own_broker, "kill"), broker_fault(own_broker, "stop")])
    r.check()


@pytest.mark.faults_full
@pytest.mark.parametrize("seed", FULL["seeds"][:1])
def test_full_broker_down_70s(
    seed: int, own_broker: Broker, run_factory: Callable[..., Run]
) -> None:
    """7: broker down 70 s: each worker resumes, or exits non-zero and is
    restarted; none stays alive without reaching exact numbers."""
    r = run_factory(own_broker.bootstrap, seed, FULL["tickets"], workers=2)
    r.drive([broker_fault(own_broker, "kill", down_s=70)])
    r.check()
