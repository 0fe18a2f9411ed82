"""The wallboard in a real browser against a live pipeline.

A real broker, a real worker, Debian's Prometheus scraping it, `cxstream
board` reading Prometheus, and Debian's headless Chromium driven by
playwright-core (tests/browser/). The numbers the page shows (read from its
data-* attributes) must equal what the worker publishes on /metrics; the
screenshot is kept for people to look at.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from streams.traffic import Incident, TrafficGenerator
from tests.live_stack import Board, Prometheus, need_binary
from tests.support import REPO, Topics, WorkerProcess, produce, samples, wait_for

BROWSER_DIR = REPO / "tests" / "browser"
STABLE_SCREENSHOT = REPO / ".cx-run" / "wallboard.png"
WINDOWS = ("1h", "24h", "7d", "30d")


def _traffic(now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """55 minutes of desks at work, one of them in an incident for the last
    25: every event lies within the last hour (backlog tickets aside, whose
    creation lies hours back), so no window changes while the test reads."""
    start = now - 55 * 60
    incident = Incident.parse("team=billing,channel=email", now - 25 * 60, now + 600)
    gen = TrafficGenerator(seed=31, seasonality=None, incidents=[incident], id_prefix="wb")
    tickets, surveys = [], []
    for occurred, ev in gen.stream(start, 0.8):
        if occurred > now - 20:
            break
        (tickets if ev["type"].startswith("ticket.") else surveys).append(ev)
    return tickets, surveys


def _expected(text: str) -> dict[str, Any]:
    """Per-window totals and per-key gauges, computed here from /metrics."""
    smp = samples(text)
    tot: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    gauges: dict[tuple[str, str, str], float] = {}
    p90s: dict[str, list[float]] = defaultdict(list)
    for (name, labels), value in smp.items():
        lab = dict(labels)
        w = lab.get("window")
        if w is None or math.isnan(value):
            continue
        t = tot[w]
        if name == "cx_nps_window_responses":
            t["nps_n"] += value
            t["nps_" + lab["category"]] += value
        elif name == "cx_csat_window_responses":
            t["csat_n"] += value
            t["csat_top"] += value if lab["score"] in ("4", "5") else 0
        elif name == "cx_ces_window_responses":
            score = smp.get(("cx_ces_score", labels))
            if score is not None:
                t["ces_n"] += value
                t["ces_sum"] += score * value
        elif name == "cx_fcr_window_tickets":
            t["fcr_n"] += value
            t["fcr_true"] += value if lab["first_contact"] == "true" else 0
        elif name == "cx_first_response_window_seconds_count":
            t["frt_n"] += value
        elif name == "cx_first_response_window_seconds" and lab.get("quantile") == "0.9":
            p90s[w].append(value)
        elif name == "cx_nps_score" and w == "24h":
            gauges[(lab["channel"], lab["team"], "nps")] = value
    tiles = {}
    for w, t in tot.items():
        if t["nps_n"]:
            tiles[("nps", w)] = 100 * (t["nps_promoter"] - t["nps_detractor"]) / t["nps_n"]
        if t["csat_n"]:
            tiles[("csat", w)] = t["csat_top"] / t["csat_n"]
        if t["ces_n"]:
            tiles[("ces", w)] = t["ces_sum"] / t["ces_n"]
        if t["fcr_n"]:
            tiles[("fcr", w)] = t["fcr_true"] / t["fcr_n"]
    counts = {(m, w): t[f"{m}_n"] for w, t in tot.items() for m in ("nps", "csat", "ces", "fcr")}
    counts.update({("frt_p90", w): t["frt_n"] for w, t in tot.items()})
    events = sum(v for (n, _), v in smp.items() if n == "cx_events_total")
    return {"tiles": tiles, "counts": counts, "gauges": gauges, "p90s": p90s, "events": events}


def _window_part(text: str) -> list[str]:
    return sorted(line for line in text.splitlines() if 'window="' in line)


def _alert_keys(alerts: list[dict[str, Any]], *states: str) -> set[tuple[str, str, str]]:
    return {
        (a["labels"]["alertname"], a["labels"].get("channel", ""), a["labels"].get("team", ""))
        for a in alerts
        if a["state"] in states
    }


def _browser(url: str, screenshot: Path, min_generated: float) -> dict[str, Any]:
    need_binary("chromium", "the Debian package chromium")
    node = need_binary("node", "the Debian package nodejs")
    if not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("playwright-core is missing: run scripts/setup.sh")
    result = subprocess.run(
        [node, str(BROWSER_DIR / "wallboard.mjs"), url, str(screenshot), f"{min_generated:.3f}"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=BROWSER_DIR,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.mark.integration
def test_the_wallboard_shows_what_the_worker_publishes(kafka_bootstrap: str, tmp_path: Path):
    topics = Topics()
    worker = WorkerProcess(kafka_bootstrap, topics, tmp_path / "worker")
    prometheus = board = None
    try:
        worker.wait_ready()
        prometheus = Prometheus(tmp_path, [worker.url.split("//")[1]])
        board = Board(tmp_path, prometheus.url)
        tickets, surveys = _traffic(time.time())
        sent = produce(kafka_bootstrap, topics.tickets, tickets, key_field="ticket_id")
        sent += produce(kafka_bootstrap, topics.surveys, surveys, key_field="ticket_id")

        def processed() -> bool:
            return _expected(worker.scrape())["events"] >= sent

        wait_for(processed, 180, what=f"the worker to process {sent} events")
        # Settled: two scrapes a tick apart publish the same windows.
        wait_for(
            lambda: (
                _window_part(worker.scrape()) == (time.sleep(1.5) or _window_part(worker.scrape()))
            ),
            60,
            what="window gauges to settle",
        )
        before = worker.scrape()
        wait_for(
            lambda: prometheus.scalar("sum(cx_events_total)") == sent,
            60,
            what="Prometheus to scrape the processed events",
        )
        time.sleep(3)  # a few more scrapes, so the sparklines have points
        screenshot = tmp_path / "wallboard.png"
        firing_before = _alert_keys(prometheus.api("/api/v1/alerts")["alerts"], "firing")
        shown = _browser(board.url + "/?rotate=0", screenshot, time.time())
        after = worker.scrape()
        alerts = prometheus.api("/api/v1/alerts")["alerts"]
    finally:
        for part in (board, prometheus):
            if part is not None:
                part.stop()
        worker.stop()

    STABLE_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, STABLE_SCREENSHOT)
    print(f"\nwallboard screenshot: {screenshot}\n  copied to {STABLE_SCREENSHOT}")

    assert _window_part(before) == _window_part(after), "windows moved while the page loaded"
    expected = _expected(after)
    assert shown["errors"] == [], shown["errors"]
    assert shown["banner"] == ""
    assert shown["workers_up"] == 1
    assert shown["events"] == expected["events"] == sent

    # Tiles: every metric x window, equal to the totals computed from /metrics.
    tiles = {(t["metric"], t["window"]): t for t in shown["tiles"]}
    assert {w for _, w in tiles} == set(WINDOWS)
    assert len(expected["tiles"]) == 4 * len(WINDOWS), sorted(expected["tiles"])
    for (metric, window), want in expected["tiles"].items():
        got = tiles[(metric, window)]
        assert got["value"] == pytest.approx(want, rel=1e-9, abs=1e-9), (metric, window, got)
    for key, n in expected["counts"].items():
        assert tiles[key]["n"] == n, key
    for window, p90s in expected["p90s"].items():
        value = tiles[("frt_p90", window)]["value"]
        assert min(p90s) - 1e-6 <= value <= max(p90s) + 1e-6, (window, value, p90s)
    nps = expected["tiles"][("nps", "24h")]
    assert tiles[("nps", "24h")]["text"] == ("+" if nps > 0 else "") + f"{nps:.0f}"

    # Heat table: NPS 24h per desk, equal to the worker's own cx_nps_score.
    cells = {(c["channel"], c["team"]): c for c in shown["cells"] if c["team"] != "*"}
    assert {c["metric"] for c in cells.values()} == {"nps"}
    shown_keys = {k for k, c in cells.items() if c["value"] is not None}
    assert shown_keys == {(ch, tm) for ch, tm, _ in expected["gauges"]}
    assert len(shown_keys) >= 12, "most of the 25 desks have NPS responses"
    for (channel, team, _), want in expected["gauges"].items():
        assert cells[(channel, team)]["value"] == pytest.approx(want, abs=1e-9), (channel, team)

    # Alerts: those Prometheus evaluates from the shipped rules.
    on_page = {(a["alertname"], a["channel"], a["team"]) for a in shown["alerts"]}
    print(f"  alerts on the page: {sorted(on_page)}")
    assert firing_before <= on_page <= _alert_keys(alerts, "firing", "pending")

    # Sparklines drawn from Prometheus range queries.
    spark = [s for s in shown["sparklines"] if s["metric"] == "nps"]
    assert spark and spark[0]["points"] >= 2 and spark[0]["lines"] >= 1, spark
