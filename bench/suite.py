"""cxstream's benchmark suite: figures against the goals of the throughput work.

    python bench/suite.py [--smoke] [--only NAME,...] [--json PATH]

Starts its own broker (deploy/kafka-local/kafka.sh on free ports) unless
CX_BENCH_BOOTSTRAP names one, pre-fills topics from the load driver
(bench/driver.py, its own process), runs the measured workers as separate
processes, prints one table and saves it as JSON (bench/results/latest.json).

Sections (NAME): ceiling, naive, cxstream, latency, recovery, memory, scrape,
scale. A section another needs (cxstream for latency, recovery and scale;
memory for scrape) runs when that one does. Benchmarks assert no goal: the
exit status is non-zero only when the harness fails (a worker dies, a run
times out) or numbers are not exact (loudly, with the differences).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness as h
from bench.ceiling import ceiling

SECTIONS = ("ceiling", "naive", "cxstream", "latency", "recovery", "memory", "scrape", "scale")
NEEDS = {"latency": "cxstream", "recovery": "cxstream", "scale": "cxstream", "scrape": "memory"}
DEFAULT_JSON = h.REPO / "bench" / "results" / "latest.json"


@dataclass(frozen=True)
class Mode:
    name: str
    events: int  # pre-filled demo-mix events
    keys: int  # (channel, team) keys of the memory and scrape sections
    memory_s: float  # the constant-rate run of the memory section
    memory_rate: float  # its events/s
    latency_s: float  # the constant-rate run of the latency section
    timeout_s: float  # longest wait for a worker to process a run


FULL = Mode("full", 1_000_000, 1000, 1800.0, 200.0, 60.0, 1800.0)
#: 50k events: at 10k events/s and more, a run of 10k was over between two
#: polls of the progress and gave no rate.
SMOKE = Mode("smoke", 50_000, 50, 15.0, 200.0, 8.0, 300.0)


class ExactnessError(RuntimeError):
    pass


@dataclass
class Row:
    section: str
    figure: str
    goal: str
    meets: str  # "yes", "no" or "-" (a reference figure)
    load: float


@dataclass
class Suite:
    mode: Mode
    only: set[str]
    bootstrap: str = ""
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    workers: list[h.Worker] = field(default_factory=list)
    exact_failures: list[str] = field(default_factory=list)
    prefix: str = field(default_factory=lambda: f"bench{uuid.uuid4().hex[:6]}")
    #: Options given to every cxstream worker (``--worker-flag``).
    worker_flags: list[str] = field(default_factory=list)

    # -- plumbing -------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def row(self, section: str, figure: str, goal: str, meets: bool | None) -> None:
        flag = "-" if meets is None else "yes" if meets else "no"
        self.rows.append(Row(section, figure, goal, flag, os.getloadavg()[0]))
        self.say(f"{section}: {figure}  [goal: {goal}; meets goal: {flag}]")

    def topics(self, name: str) -> h.BenchTopics:
        topics = h.BenchTopics(f"{self.prefix}-{name}")
        h.create_topics(self.bootstrap, topics)
        return topics

    def worker(self, name: str, topics: h.BenchTopics, app_id: str, **kw: Any) -> h.Worker:
        if "cmd" not in kw:
            kw["extra"] = [*self.worker_flags, *kw.get("extra", [])]
        w = h.Worker(name, self.bootstrap, topics, app_id, **kw)
        self.workers.append(w)
        return w

    def stop(self, w: h.Worker) -> None:
        if w in self.workers:
            w.stop()
            self.workers.remove(w)

    def driver(self, cmd: str, topics: h.BenchTopics, *args: str) -> dict[str, Any]:
        out = h.RUN_DIR / f"{topics.prefix}-{cmd}.json"
        subprocess.run(
            [sys.executable, str(h.REPO / "bench" / "driver.py"), cmd,
             "--bootstrap", self.bootstrap, "--prefix", topics.prefix, "--out", str(out), *args],
            check=True, cwd=h.REPO,
        )  # fmt: skip
        result: dict[str, Any] = orjson.loads(out.read_bytes())
        out.unlink()
        return result

    def exact(
        self, what: str, got: dict[str, dict[str, int]], want: dict[str, dict[str, int]]
    ) -> bool:
        diff = h.diff_counts(got, want)
        if diff:
            totals = ", ".join(
                f"{k} {sum(got.get(k, {}).values())} vs {sum(want.get(k, {}).values())}"
                for k in sorted(set(got) | set(want))
            )
            diff = [f"totals: {totals}", *diff]
            self.exact_failures.append(f"{what}: " + "; ".join(diff))
            self.say(f"NOT EXACT: {what} (got vs expected): " + "; ".join(diff))
        return not diff

    def wants(self, name: str) -> bool:
        return name in self.only or any(
            dep == name and self.wants(other) for other, dep in NEEDS.items()
        )

    # -- the main pre-filled topics ------------------------------------------

    def prefill(self) -> None:
        self.main_topics = self.topics("main")
        self.say(f"pre-filling {self.mode.events:,} demo-mix events (driver process)")
        res = self.driver("prefill", self.main_topics, "--events", str(self.mode.events))
        self.n = res["events"]
        self.expected = res["expected"]
        self.data["input"] = {k: v for k, v in res.items() if k != "expected"}
        self.data["input"]["expected"] = self.expected
        self.say(
            f"pre-filled {self.n:,} events in {res['produce_s']:.1f} s "
            f"(generated in {res['generate_s']:.1f} s)"
        )

    def run_cx(self, name: str, workers: int) -> tuple[float, list[h.Worker], dict[str, Any]]:
        """n workers of one new app over the main topics; events/s and counts."""
        app_id = f"{self.main_topics.prefix}-{name}"
        ws = [self.worker(f"{name}-{i}", self.main_topics, app_id) for i in range(workers)]
        for w in ws:
            w.wait_up()
        t0 = time.perf_counter()
        prog = h.wait_processed(ws, self.n, self.mode.timeout_s)
        rate = prog.rate(self.n)
        # Ingested is not yet published: the route and observation records
        # the input caused are still on their way. The end-to-end rate runs
        # from the first poll that saw events (as the ingest rate) to the
        # moment the published numbers equal the expected ones.
        _, exact_s = self.read_counts(ws)
        t_a, c_a = next(((t, c) for t, c in prog.samples if c > 0), (0.0, 0.0))
        end_to_end = (self.n - c_a) / max(1e-9, time.perf_counter() - t0 - t_a)
        # Then the group must have consumed everything (no partition stuck),
        # and the numbers must still be exact: read once more.
        lag_s = h.wait_lag_zero(self.bootstrap, app_id, self.main_topics, ws, self.mode.timeout_s)
        wait_settled(ws)
        counts = h.sum_counts(h.counts_from_samples(w.samples()) for w in ws)
        self.say(
            f"{name}: ingest {rate:,.0f} events/s, end to end {end_to_end:,.0f} events/s; "
            + (
                f"exact {exact_s:.1f} s after the last ingest"
                if exact_s is not None
                else "never exact"
            )
            + f", group lag 0 {lag_s:.1f} s later"
        )
        self.data.setdefault("runs", {})[name] = {
            "ingest_events_per_s": rate,
            "end_to_end_events_per_s": end_to_end,
            "exact_after_ingest_s": exact_s,
            "lag_zero_after_exact_s": lag_s,
        }
        return end_to_end, ws, counts

    def read_counts(
        self, ws: list[h.Worker], timeout_s: float = 60.0
    ) -> tuple[dict[str, dict[str, int]], float | None]:
        """The workers' summed numbers once settled: polled until they equal
        the expected ones (seconds taken) or the timeout (None: not exact,
        the caller reports the differences)."""
        t0 = time.perf_counter()
        counts: dict[str, dict[str, int]] = {}
        while True:
            wait_settled(ws)
            counts = h.sum_counts(h.counts_from_samples(w.samples()) for w in ws)
            if not h.diff_counts(counts, self.expected):
                return counts, time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout_s:
                return counts, None
            time.sleep(0.5)

    def few_keys(self, keys: int) -> str:
        return f" (n/a: {keys} keys in this run)" if keys < 1000 else ""

    # -- sections -------------------------------------------------------------

    def s_ceiling(self) -> None:
        t = self.main_topics
        self.ceiling_rate = ceiling(self.bootstrap, [t.tickets, t.surveys], self.n)
        self.data["ceiling"] = {"events_per_s": self.ceiling_rate}
        self.row("1 ceiling", f"{self.ceiling_rate:,.0f} events/s (aiokafka getmany + orjson)",
                 "reference for 3", None)  # fmt: skip

    def s_naive(self) -> None:
        t = self.main_topics
        app_id = f"{t.prefix}-naive"
        w = self.worker(
            "naive", t, app_id,
            cmd=[sys.executable, str(h.REPO / "bench" / "naive_faust.py"), "worker",
                 "-l", "warn", "--web-port", "{port}"],
            env={"NAIVE_BOOTSTRAP": self.bootstrap, "NAIVE_APP_ID": app_id,
                 "NAIVE_TICKETS": t.tickets, "NAIVE_SURVEYS": t.surveys,
                 "NAIVE_DATA_DIR": "{dir}/state"},
        )  # fmt: skip
        w.dir.joinpath("state").mkdir(exist_ok=True)
        h.create_changelogs(self.bootstrap, app_id, ("seen", "tickets", "counts"))
        w.processed = lambda: naive_processed(w)  # type: ignore[method-assign]
        w.wait_up()
        prog = h.wait_processed([w], self.n, self.mode.timeout_s * 3)
        self.naive_rate = prog.rate(self.n)
        self.naive_counts = naive_counts(orjson.loads(w.get("/counts")))
        self.stop(w)
        self.data["naive"] = {"events_per_s": self.naive_rate, "counts": self.naive_counts}
        self.say(f"naive Faust: {self.naive_rate:,.0f} events/s")

    def s_cxstream(self) -> None:
        rate, ws, counts = self.run_cx("cx1", 1)
        self.cx_rate, self.cx_worker, self.cx_counts = rate, ws[0], counts
        exact = self.exact("cxstream, 1 worker", counts, self.expected)
        self.data["cxstream"] = {"events_per_s": rate, "exact": exact}
        ceiling_rate = getattr(self, "ceiling_rate", None)
        if ceiling_rate:
            share = rate / ceiling_rate
            self.data["cxstream"]["share_of_ceiling"] = share
            self.row("3 cxstream, 1 worker",
                     f"{rate:,.0f} events/s = {100 * share:.1f} % of the ceiling",
                     ">= 25 % of the ceiling (long-run 40 %)", share >= 0.25)  # fmt: skip
        else:
            self.row("3 cxstream, 1 worker", f"{rate:,.0f} events/s", "(ceiling not run)", None)
        naive_rate = getattr(self, "naive_rate", None)
        if naive_rate:
            equal = h.diff_counts(self.naive_counts, counts)
            if equal:
                self.exact_failures.append("naive vs cxstream: " + "; ".join(equal))
            self.data["naive"]["results_equal"] = not equal
            self.data["naive"]["differences"] = equal
            self.row("2 naive Faust",
                     f"{naive_rate:,.0f} events/s; results equal: "
                     + ("yes" if not equal else "no (" + "; ".join(equal) + ")"),
                     "reference for 3", None)  # fmt: skip
            self.row("3 cxstream vs naive", f"{rate / naive_rate:.2f}x the naive baseline",
                     ">= 2x naive, identical results", rate / naive_rate >= 2 and not equal)  # fmt: skip

    def s_recovery(self) -> None:
        old = self.cx_worker
        windows = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
        before = h.state_numbers(old.samples())
        t_pre = time.time()
        self.stop(old)
        t0 = time.perf_counter()
        new = self.worker("cx1-restarted", self.main_topics, f"{self.main_topics.prefix}-cx1")
        last_diff: list[str] = []
        while True:
            new.check_alive()
            # A window whose quantised old edge moved since the snapshot may
            # rightly hold fewer observations now: it is left out of the check.
            now = time.time()
            moved = frozenset(
                w for w, sec in windows.items() if int(now * 60 // sec) != int(t_pre * 60 // sec)
            )
            want = {k: v for k, v in before.items() if dict(k[1]).get("window") not in moved}
            try:
                got = h.state_numbers(new.samples(), moved)
            except OSError:
                got = {}
            if got == want and want:
                seconds = time.perf_counter() - t0
                break
            last_diff = [f"{k[0]}{dict(k[1])}: {got.get(k)} vs {v}" for k, v in want.items()
                         if got.get(k) != v][:5]  # fmt: skip
            if time.perf_counter() - t0 > 180:
                raise ExactnessError("recovery: /metrics never matched: " + "; ".join(last_diff))
            time.sleep(0.25)
        self.stop(new)
        self.data["recovery"] = {"seconds": seconds, "series_compared": len(want),
                                 "windows_left_out": sorted(moved)}  # fmt: skip
        left = f"; left out (edge moved): {','.join(sorted(moved))}" if moved else ""
        self.row("5 recovery",
                 f"{seconds:.1f} s from a new worker's start to equal /metrics "
                 f"({len(want):,} series, state of {self.n:,} events{left})",
                 "<= 10 s", seconds <= 10)  # fmt: skip

    def s_scale(self) -> None:
        self.stop(self.cx_worker)  # nothing else may share the cores (if recovery did not run)
        rates = {1: self.cx_rate}
        counts = {1: self.cx_counts}
        for n in (2, 3):
            self.say(f"scale-out: {n} workers")
            rate, ws, c = self.run_cx(f"scale{n}", n)
            rates[n], counts[n] = rate, c
            for w in ws:
                self.stop(w)
        exact = {
            n: self.exact(f"scale-out, {n} workers", c, self.expected) for n, c in counts.items()
        }
        same = all(c == counts[1] for c in counts.values())
        self.data["scale"] = {"events_per_s": rates, "exact": exact, "equal_across_runs": same,
                              "cores": os.cpu_count()}  # fmt: skip
        self.row("8 scale-out",
                 " / ".join(f"{n}w {r:,.0f}" for n, r in rates.items())
                 + f" events/s on 8 partitions; totals exact: {'yes' if all(exact.values()) and same else 'no'}"
                 + f" (this machine has {os.cpu_count()} cores)",
                 "exact totals (more workers: faster only with free cores)",
                 all(exact.values()) and same)  # fmt: skip

    def s_latency(self) -> None:
        # Own topics: the main ones must keep exactly the pre-filled events.
        rate = 0.5 * self.cx_rate
        topics = self.topics("latency")
        w = self.worker("latency", topics, f"{topics.prefix}-app")
        w.wait_up()
        wait_settled([w])
        # Warm-up: the same load until the worker has caught up with it, so
        # the figures are the steady state, not the first fetches' start-up.
        warm = self.driver("rate", topics, "--rate", str(rate), "--seconds", "3", "--seed", "12")
        h.wait_processed([w], warm["sent"], self.mode.timeout_s)
        probe_every = max(2, int(rate / 20))  # ~20 probes a second
        alert_every = probe_every * 4 + 1  # ~5 detractor responses a second
        line = 'cx_tickets_created_total{channel="bench",priority="normal",team="probe"}'
        polls: list[tuple[float, float]] = []
        ingested: list[tuple[float, float]] = []  # cx_events_total: how far ingest is
        alerts_seen: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                t_next = time.time() + 0.1
                try:
                    # Only the two families read: a full scrape ten times a
                    # second would cost the worker more than the load does
                    # (Prometheus scrapes it every 15 s).
                    text = w.metrics_text("cx_tickets_created_total", "cx_events_total")
                    t = time.time()
                    value, events = 0.0, 0.0
                    for x in text.splitlines():
                        if x.startswith(line):
                            value = float(x.rsplit(" ", 1)[1])
                        elif x.startswith("cx_events_total{"):
                            events += float(x.rsplit(" ", 1)[1])
                    polls.append((t, value))
                    ingested.append((t, events))
                except OSError:
                    pass
                time.sleep(max(0.0, t_next - time.time()))

        def consume() -> None:
            from kafka import KafkaConsumer

            consumer = KafkaConsumer(topics.alerts, bootstrap_servers=self.bootstrap,
                                     auto_offset_reset="earliest", group_id=None)  # fmt: skip
            while not stop.is_set():
                for records in consumer.poll(200).values():
                    t = time.time()
                    for r in records:
                        doc = orjson.loads(r.value)
                        eid = doc.get("labels", {}).get("event_id")
                        if doc.get("status") == "firing" and eid:
                            alerts_seen.setdefault(eid, t)
            consumer.close()

        threads = [threading.Thread(target=poll), threading.Thread(target=consume)]
        for t in threads:
            t.start()
        try:
            res = self.driver("rate", topics, "--rate", str(rate), "--seconds",
                              str(self.mode.latency_s), "--probe-every", str(probe_every),
                              "--alert-every", str(alert_every))  # fmt: skip
            deadline = time.time() + max(30.0, 2 * self.mode.latency_s)
            while time.time() < deadline and (
                not polls
                or polls[-1][1] < len(res["probes"])
                or len(alerts_seen) < len(res["alerts"])
            ):
                w.check_alive()
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.stop(w)
        t_end = res["started"] + res["seconds"]
        behind = next((c for t, c in reversed(ingested) if t <= t_end), 0.0)
        # A probe still invisible after the drain (the worker fell behind)
        # counts as infinitely late: the percentiles then say so.
        inf = float("inf")
        probe_lat = match_counts(res["probes"], polls)
        unseen = len(res["probes"]) - len(probe_lat)
        probe_lat += [inf] * unseen
        alert_lat = [alerts_seen.get(e, inf) - t for e, t in res["alerts"].items()]
        missing = sum(1 for e in res["alerts"] if e not in alerts_seen)
        p50, p99 = quantile(probe_lat, 0.5), quantile(probe_lat, 0.99)
        a99 = quantile(alert_lat, 0.99)
        self.data["latency"] = {
            "target_rate": rate, "achieved_rate": res["rate"], "seconds": res["seconds"],
            "probes": len(probe_lat), "metrics_p50_s": p50, "metrics_p99_s": p99,
            "alerts": len(alert_lat), "alert_p50_s": quantile(alert_lat, 0.5), "alert_p99_s": a99,
            "unseen_probes": unseen, "alerts_missing": missing,
            "ingested_when_driver_stopped": behind, "sent": res["sent"],
            "probe_latencies_s": [round(x, 3) for x in probe_lat],
        }  # fmt: skip
        load = (
            f"at {res['rate']:,.0f} events/s (50 % of {2 * rate:,.0f}; "
            f"{behind:,.0f} of {res['sent']:,} counted on /metrics when the driver stopped)"
        )
        drain = f"{max(30.0, 2 * self.mode.latency_s):.0f} s after the run"
        self.row("4 latency event->/metrics",
                 f"p50 {ms(p50)}, p99 {ms(p99)} {load}, {len(probe_lat)} probes"
                 + (f" ({unseen} not visible {drain})" if unseen else "") + ", 100 ms polling of 2 families", "p99 <= 500 ms at 50 % load", p99 <= 0.5)  # fmt: skip
        self.row("4 latency event->alert",
                 f"p50 {ms(quantile(alert_lat, 0.5))}, p99 {ms(a99)} "
                 f"({len(alert_lat)} CxDetractorResponse" + (f", {missing} not seen {drain}" if missing else "") + ")", "p99 <= 2 s", a99 <= 2.0)  # fmt: skip

    def s_memory(self) -> None:
        topics = self.topics("keys")
        w = self.worker("memory", topics, f"{topics.prefix}-app")
        w.wait_up()
        self.say(f"memory: filling {self.mode.keys:,} keys x all buckets of 4 windows")
        res = self.driver("keys", topics, "--keys", str(self.mode.keys))
        h.wait_processed([w], res["events"], self.mode.timeout_s)
        h.settle([w])
        self.exact("memory keys", h.counts_from_samples(w.samples()), res["expected"])
        smp = w.samples()
        keys = {
            (dict(lab)["channel"], dict(lab)["team"])
            for (name, lab), _ in smp.items()
            if name == "cx_first_response_window_seconds_count" and dict(lab)["window"] == "30d"
        }
        rss_loaded = w.rss_mb()
        self.memory_worker = w
        self.data["memory"] = {
            "keys": len(keys),
            "fill_events": res["events"],
            "rss_mb": rss_loaded,
        }
        self.row("6 memory, keys loaded",
                 f"{rss_loaded:.0f} MB RSS with {len(keys):,} keys x full 30-day windows "
                 f"({res['events']:,} events)", "<= 300 MB for 1,000 keys" + self.few_keys(len(keys)),
                 rss_loaded <= 300 if len(keys) >= 1000 else None)  # fmt: skip
        if self.wants("scrape"):
            self.s_scrape(w)
        self.memory_run(w, topics)
        self.stop(w)

    def s_scrape(self, w: h.Worker) -> None:
        times: list[float] = []
        size = 0
        for _ in range(10):
            t0 = time.perf_counter()
            body = w.get("/metrics")
            times.append(time.perf_counter() - t0)
            size = len(body)
        series = sum(1 for ln in body.splitlines() if ln and not ln.startswith(b"#"))
        med = statistics.median(times)
        self.data["scrape"] = {
            "median_s": med,
            "max_s": max(times),
            "bytes": size,
            "series": series,
        }
        self.row("7 scrape /metrics",
                 f"median {1000 * med:.0f} ms of 10 (max {1000 * max(times):.0f}), "
                 f"{size / 1e6:.1f} MB, {series:,} series, {self.data['memory']['keys']:,} keys",
                 "<= 200 ms with 1,000 keys" + self.few_keys(self.data["memory"]["keys"]),
                 med <= 0.2 if self.data["memory"]["keys"] >= 1000 else None)  # fmt: skip

    def memory_run(self, w: h.Worker, topics: h.BenchTopics) -> None:
        seconds, rate = self.mode.memory_s, self.mode.memory_rate
        self.say(f"memory: {seconds:.0f} s at {rate:.0f} events/s over the {self.mode.keys} keys")
        every = 1.0 if seconds <= 120 else 10.0
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.time()
            while not stop.is_set():
                samples.append((time.time() - t0, w.rss_mb()))
                stop.wait(every)

        thread = threading.Thread(target=sample)
        thread.start()
        try:
            self.driver("rate", topics, "--rate", str(rate), "--seconds", str(seconds),
                        "--keys", str(self.mode.keys))  # fmt: skip
        finally:
            stop.set()
            thread.join()
        w.check_alive()
        rss = [r for _, r in samples]
        slope = slope_per_min(samples)
        growth = slope * seconds / 60
        flat = growth <= max(10.0, 0.05 * rss[0])
        self.data["memory"]["run"] = {"seconds": seconds, "rate": rate, "start_mb": rss[0],
                                      "end_mb": rss[-1], "max_mb": max(rss),
                                      "slope_mb_per_min": slope, "samples": samples}  # fmt: skip
        self.row("6 memory, constant rate",
                 f"{seconds / 60:.1f} min at {rate:.0f} events/s: start {rss[0]:.0f}, end {rss[-1]:.0f}, "
                 f"max {max(rss):.0f} MB, slope {slope:+.2f} MB/min",
                 "no growth (fitted growth <= max(10 MB, 5 %))", flat)  # fmt: skip

    # -- the run --------------------------------------------------------------

    def run(self) -> None:
        self.say(f"mode {self.mode.name}; broker {self.bootstrap}; load {fmt_load()}")
        self.data["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.data["load_start"] = os.getloadavg()
        steps: list[tuple[str, Callable[[], None]]] = [
            ("ceiling", self.s_ceiling), ("naive", self.s_naive), ("cxstream", self.s_cxstream),
            ("recovery", self.s_recovery), ("latency", self.s_latency), ("scale", self.s_scale),
            ("memory", self.s_memory),
        ]  # fmt: skip
        needs_main = {"ceiling", "naive", "cxstream", "recovery", "latency", "scale"}
        if any(self.wants(s) for s in needs_main):
            self.prefill()
        for name, step in steps:
            if self.wants(name):
                self.say(f"== {name} (load {fmt_load()})")
                step()
        self.data["load_end"] = os.getloadavg()

    def close(self, keep_logs: bool) -> None:
        for w in list(self.workers):
            self.stop(w)
        runs = sorted(h.RUN_DIR.glob(f"{self.prefix}-*"))
        if (keep_logs or os.environ.get("CX_BENCH_PROFILE")) and runs:
            self.say(f"worker logs kept in {h.RUN_DIR}/{self.prefix}-*")
        else:
            for d in runs:
                shutil.rmtree(d, ignore_errors=True)


def naive_processed(w: h.Worker) -> float:
    w.check_alive()
    try:
        counts = orjson.loads(w.get("/counts"))
    except OSError:
        return -1.0
    return float(sum(v for k, v in counts.items() if k.startswith("events|")))


def naive_counts(table: dict[str, int]) -> dict[str, dict[str, int]]:
    """The naive app's counters in the shape of harness.expected_counts."""
    out: dict[str, dict[str, int]] = {}
    for key, value in table.items():
        kind, _, rest = key.partition("|")
        if kind in ("nps", "csat", "ces"):
            rest = rest.rsplit("|", 1)[1]  # summed over dims
        bucket = out.setdefault(kind, {})
        bucket[rest] = bucket.get(rest, 0) + value
    return {k: {kk: vv for kk, vv in c.items() if vv} for k, c in out.items()}


def wait_settled(ws: list[h.Worker], timeout_s: float = 120.0) -> None:
    """Until every worker has recovered its tables, none is rebalancing and
    together they own each partition once: before that, a worker's /metrics
    may lack keys it is about to take over."""
    t0 = time.perf_counter()
    owned: list[int] = []
    while time.perf_counter() - t0 < timeout_s:
        owned = []
        ready = True
        for w in ws:
            w.check_alive()
            try:
                doc = json.loads(w.get("/healthz"))
            except OSError:
                ready = False
                continue
            ready = ready and bool(doc.get("recovered")) and not doc.get("rebalancing")
            owned.extend(doc.get("active_partitions", []))
        if ready and sorted(owned) == list(range(h.PARTITIONS)):
            return
        time.sleep(0.5)
    names = ", ".join(w.name for w in ws)
    raise h.HarnessError(
        f"{names}: not settled within {timeout_s:.0f}s (partitions owned: {owned})"
    )


def match_counts(sends: list[float], polls: list[tuple[float, float]]) -> list[float]:
    """Latency of the k-th send: the first poll whose count reached k."""
    out: list[float] = []
    k = 0
    for t, count in polls:
        while k < len(sends) and k < count:
            out.append(max(0.0, t - sends[k]))
            k += 1
    return out


def quantile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def slope_per_min(samples: list[tuple[float, float]]) -> float:
    if len(samples) < 2:
        return 0.0
    xs, ys = [t for t, _ in samples], [r for _, r in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def finite(x: Any) -> Any:
    """The figures as strict JSON: infinities (never seen) become null."""
    if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
        return None
    if isinstance(x, dict):
        return {str(k): finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [finite(v) for v in x]
    return x


def ms(seconds: float) -> str:
    return "never" if seconds == float("inf") else f"{1000 * seconds:.0f} ms"


def fmt_load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(rows: list[Row]) -> str:
    head = ("section", "figure", "goal", "meets goal", "load 1m")
    cells = [head, *((r.section, r.figure, r.goal, r.meets, f"{r.load:.2f}") for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = [" | ".join(c[i].ljust(widths[i]) for i in range(len(head))) for c in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="cxstream benchmark suite")
    parser.add_argument("--smoke", action="store_true", help="small, about 2 minutes")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to save figures")
    parser.add_argument("--events", type=int, help="pre-filled events (default: by mode)")
    parser.add_argument(
        "--memory-seconds", type=float, help="length of the constant-rate memory run"
    )
    parser.add_argument(
        "--worker-flag",
        action="append",
        default=[],
        metavar="FLAG",
        help="an option for every cxstream worker, e.g. --worker-flag=--dedup-horizon=1h "
        "(repeatable)",
    )
    args = parser.parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"--only: unknown sections {sorted(unknown)}; known: {','.join(SECTIONS)}")
    mode = SMOKE if args.smoke else FULL
    if args.events:
        mode = dataclasses.replace(mode, events=args.events)
    if args.memory_seconds:
        mode = dataclasses.replace(mode, memory_s=args.memory_seconds)
    suite = Suite(mode, only, worker_flags=args.worker_flag)
    if args.worker_flag:
        suite.say(f"worker flags: {' '.join(args.worker_flag)}")
    h.RUN_DIR.mkdir(parents=True, exist_ok=True)
    broker = h.Broker()
    t0 = time.perf_counter()
    status = 0
    try:
        suite.bootstrap = broker.start()
        suite.run()
    except (h.HarnessError, ExactnessError, subprocess.CalledProcessError) as exc:
        suite.say(f"HARNESS FAILURE: {exc}")
        suite.data["failure"] = str(exc)
        status = 2
    finally:
        if suite.exact_failures:
            status = status or 1
        suite.close(keep_logs=status != 0)
        broker.stop()
    suite.data.update(
        mode=suite.mode.name, seconds=time.perf_counter() - t0, cores=os.cpu_count(),
        python=platform.python_version(), load_end=os.getloadavg(),
        rows=[r.__dict__ for r in suite.rows], exact_failures=suite.exact_failures,
        worker_flags=suite.worker_flags,
    )  # fmt: skip
    print()
    print(f"cxstream benchmarks, {suite.mode.name} mode, {os.cpu_count()} cores, "
          f"load average {fmt_load()} at the end, {suite.data['seconds']:.0f} s")  # fmt: skip
    print(table(suite.rows))
    if suite.exact_failures:
        print("\nNOT EXACT (the harness fails):", *suite.exact_failures, sep="\n  ")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(finite(suite.data), indent=1, default=str) + "\n")
    print(f"\nfigures saved to {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
