"""Every dashboard query and every recording rule returns data from a real
Prometheus scraping a real worker fed with realistic traffic.

Parts: the session's Kafka broker, one `cxstream worker` forwarding to a real
Alertmanager, Debian's `prometheus` (2.42) on a free port loading the shipped
recording and alerting rules, and streams.traffic's generator. Grafana's
variables are substituted as Grafana would: `$channel`/`$team` by one real
(channel, team) pair that Prometheus reports, `$window` by 24h,
`$__rate_interval`/`$__interval` by 1m.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams.traffic import TrafficGenerator
from tests.deploy.grafana import dashboards, metric_names, targets
from tests.integration.test_alertmanager import CONFIG as AM_CONFIG
from tests.integration.test_alertmanager import Alertmanager
from tests.support import REPO, Topics, WorkerProcess, free_port, produce, samples, total, wait_for

pytestmark = pytest.mark.integration

PROM = REPO / "deploy" / "prometheus"
RULE_FILES = [PROM / "recording-rules.yml", PROM / "alerting-rules.yml"]
#: Metrics the dashboards and alerts already use that this worker does not
#: publish yet (they arrive with the consumer-lag and recovery work). The test
#: fails as soon as the worker publishes one, so the exemption cannot outlive it.
NOT_YET_PUBLISHED: set[str] = set()  # every metric a panel reads is published
SUBSTITUTE = {"$__rate_interval": "1m", "$__interval": "1m", "$window": "24h"}
REPORT: dict[str, Any] = {}
#: Every key on a schedule closed 15 minutes of each hour, so that business and
#: calendar time differ whenever the traffic runs (its timestamps span the past
#: hours, at any time of day). Short first-reply targets are met by some tickets
#: and breached by others; a long resolution target stays pending (next due).
_HOURS = ", ".join(f"{h:02d}:00-{h:02d}:45" for h in range(24))
SCHEDULES = f"""
schedules:
  most-of-each-hour:
    timezone: UTC
    hours:
      - mon-sun {_HOURS}
assign:
  - schedule: most-of-each-hour
sla:
""" + "".join(
    f"  {prio}: {{first_reply: 20m business, resolution: 30d calendar}}\n"
    for prio in ("low", "normal", "high", "urgent")
)


class Prometheus:
    def __init__(self, workdir: Path, worker: str, alertmanager: str) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed (Debian: apt-get install prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in RULE_FILES],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
            "scrape_configs": [{"job_name": "cxstream", "static_configs": [{"targets": [worker]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self._ready, 60, what=f"prometheus ready ({self.log_path})")
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        REPORT["prometheus"] = (out.stdout or out.stderr).splitlines()[0]

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as resp:
            doc = orjson.loads(resp.read())
        assert doc["status"] == "success", doc
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        return list(data["result"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


@pytest.fixture()
def stack(kafka_bootstrap: str, topics: Topics, workdir: Path) -> Iterator[dict[str, Any]]:
    am_port = free_port()
    (workdir / "am").mkdir()
    am = Alertmanager(
        f"http://127.0.0.1:{am_port}", am_port, workdir / "am", workdir / "alertmanager.log"
    )
    assert AM_CONFIG.is_file()
    am.start()
    schedules = workdir / "schedules.yml"
    schedules.write_text(SCHEDULES)
    worker = WorkerProcess(
        kafka_bootstrap,
        topics,
        workdir,
        extra=["--alertmanager", am.url, "--schedules", str(schedules), "--sweep-interval", "2s"],
        partitions=2,
    )
    prom: Prometheus | None = None
    try:
        worker.wait_ready(min_partitions=2)
        prom = Prometheus(workdir, f"127.0.0.1:{worker.port}", f"127.0.0.1:{am_port}")
        yield {"worker": worker, "prometheus": prom, "alertmanager": am}
    finally:
        if prom is not None:
            prom.stop()
        worker.stop()
        am.stop()


def _traffic(now_s: float, hours: float, tickets_per_s: float) -> list[dict[str, Any]]:
    events = []
    for occurred, event in TrafficGenerator(seed=23).stream(now_s - hours * 3600, tickets_per_s):
        if occurred > now_s - 5:
            break
        events.append(event)
    return events


def _key(prom: Prometheus) -> dict[str, str]:
    """A (channel, team) pair that has every kind of number in the 24h window."""
    expr = " and on (channel, team) ".join(
        [
            'cx_ces_score{window="24h"}',
            'cx_nps_score{window="24h"}',
            'cx_csat_ratio{window="24h"}',
            'cx_fcr_ratio{window="24h"}',
            'cx_resolution_window_seconds_count{window="24h"} > 0',
            "sum by (channel, team) (cx_tickets_reopened_total) > 0",
            "sum by (channel, team) (cx_tickets_open) > 0",
            'cx_first_response_business_window_seconds_count{window="24h"} > 0',
            'sum by (channel, team) (cx_sla_achieved_ratio{window="24h"})',
            "sum by (channel, team) (cx_sla_pending) > 0",
            "sum by (channel, team) (cx_sla_breaches_total) > 0",
            "sum by (channel, team) (cx_sla_next_due_seconds)",
        ]
    )
    result = prom.query(expr)
    assert result, "no channel/team has every kind of number; more traffic is needed"
    best = sorted(result, key=lambda r: (r["metric"]["channel"], r["metric"]["team"]))[0]
    return {"channel": best["metric"]["channel"], "team": best["metric"]["team"]}


def _substitute(expr: str, key: dict[str, str]) -> str:
    for name, value in {**SUBSTITUTE, "$channel": key["channel"], "$team": key["team"]}.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def _finite(result: list[dict[str, Any]]) -> list[float]:
    return [v for v in (float(r["value"][1]) for r in result) if math.isfinite(v)]


def test_every_dashboard_query_and_recording_rule_returns_data(
    stack: dict[str, Any], kafka_bootstrap: str, topics: Topics
) -> None:
    worker: WorkerProcess = stack["worker"]
    prom: Prometheus = stack["prometheus"]
    now_s = time.time()
    events = _traffic(now_s, hours=3, tickets_per_s=0.07)
    tickets = [e for e in events if e["type"].startswith("ticket.")]
    surveys = [e for e in events if e["type"].startswith("survey.")]
    # In four rounds, so that Prometheus sees the counters grow (rates > 0).
    for i in range(4):
        produce(kafka_bootstrap, topics.tickets, tickets[i::4], key_field="ticket_id")
        produce(kafka_bootstrap, topics.surveys, surveys[i::4], key_field="ticket_id")
        time.sleep(3)
    wait_for(
        lambda: total(samples(worker.scrape()), "cx_events_total") >= len(events),
        180,
        what=f"the worker to process {len(events)} events",
    )
    time.sleep(5)  # a few more scrapes after the last change

    # The worker's own exposition: build info, process metrics, no *_created.
    text = worker.scrape()
    assert "cx_build_info{" in text and "process_cpu_seconds_total" in text
    published = {name for name, _ in samples(text)}
    assert not [n for n in published if n.endswith("_created")]
    early = NOT_YET_PUBLISHED & {n.removesuffix("_total") for n in published}
    assert not early, f"{early} are published now: drop them from NOT_YET_PUBLISHED"

    # Shipped rules load and evaluate without error on this Prometheus.
    def rules_evaluated() -> list[dict[str, Any]] | None:
        rules = [r for g in prom.api("rules")["groups"] for r in g["rules"]]
        never = [r for r in rules if r.get("lastEvaluation", "0001").startswith("0001")]
        return None if never else rules

    rules = wait_for(rules_evaluated, 90, what="every rule group evaluated once")
    assert {r["health"] for r in rules} == {"ok"}, [r for r in rules if r["health"] != "ok"]
    recording = [r for r in rules if r["type"] == "recording"]
    alerting = [r for r in rules if r["type"] == "alerting"]
    shipped = [
        r for p in RULE_FILES for g in yaml.safe_load(p.read_text())["groups"] for r in g["rules"]
    ]
    assert len(recording) == sum(1 for r in shipped if "record" in r)
    assert len(alerting) == sum(1 for r in shipped if "alert" in r)

    # The recording group runs every 30 s: wait for an evaluation that saw the
    # data grow (a rate-based quantile is NaN until two samples differ).
    wait_for(
        lambda: all(_finite(prom.query(r["name"])) for r in recording),
        90,
        interval=2,
        what="every recording rule to record a series",
    )
    key = _key(prom)
    for name in ("channel", "team"):
        values = prom.api(f"label/{name}/values", **{"match[]": "cx_tickets_created_total"})
        assert key[name] in values, (name, values)

    checked: list[str] = []
    pending: list[str] = []
    empty: list[str] = []
    exprs: list[tuple[str, str]] = []
    for dash in dashboards().values():
        for panel, target in targets(dash):
            exprs.append((f"{dash['uid']} / {panel['title']}", target["expr"]))
    for rule in recording:
        exprs.append((f"recording rule {rule['name']} (expression)", rule["query"]))
        exprs.append((f"recording rule {rule['name']} (recorded series)", rule["name"]))
    for where, raw in exprs:
        expr = _substitute(raw, key)
        result = prom.query(expr)
        if metric_names(raw) & NOT_YET_PUBLISHED:
            pending.append(where)
            continue
        if not _finite(result):
            empty.append(f"{where}: {expr} -> {result}")
        checked.append(where)
    REPORT.update(
        key=key,
        events=len(events),
        dashboard_queries=sum(1 for w, _ in exprs if not w.startswith("recording")),
        recording_rules=len(recording),
        checked=len(checked),
        pending=pending,
    )
    print(f"\ndashboard e2e: {REPORT}")
    assert not empty, "queries without finite data:\n" + "\n".join(empty)
    assert len(checked) + len(pending) == len(exprs)
    assert len(pending) <= 3, pending
