"""`cxstream demo --no-tui` for real, briefly: two workers on the test broker,
Debian's Prometheus and Alertmanager, the wallboard, history then live
traffic with an incident; it must print numbers and stop everything."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.demo.stack import rule_files
from tests.live_stack import need_binary
from tests.support import REPO, wait_for

URL_LINE = re.compile(r"^demo: (\S+(?: \d)?)\s+(http://\S+)$")
NUMBER = r"[-+]?\d+(?:\.\d+)?%?"


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.integration
def test_demo_runs_the_whole_stack_and_stops_it(kafka_bootstrap: str, tmp_path: Path) -> None:
    need_binary("prometheus", "the Debian package prometheus")
    need_binary("prometheus-alertmanager", "the Debian package prometheus-alertmanager")
    cmd = [
        sys.executable, "-m", "streams", "demo",
        "--bootstrap", kafka_bootstrap,
        "--run-dir", str(tmp_path / "run"),
        "--duration", "45",
        "--no-tui", "--print-every", "5",
        "--history-days", "0.25",
        "--incident", "team=billing,channel=email", "--incident-after", "0",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        urls = wait_for(
            lambda: (
                {m.group(1): m.group(2) for m in map(URL_LINE.match, list(lines)) if m}.keys()
                >= {"prometheus", "alertmanager", "wallboard", "worker 1", "worker 2"}
                and {m.group(1): m.group(2) for m in map(URL_LINE.match, list(lines)) if m}
            ),
            180,
            what="the demo to print its URLs",
        )
        prom = urls["prometheus"].removesuffix("/alerts")
        am = urls["alertmanager"].removesuffix("/#/alerts")

        # Prometheus scrapes both workers and loaded the shipped rules.
        def targets_up() -> bool:
            active = _get_json(prom + "/api/v1/targets")["data"]["activeTargets"]
            return len(active) == 2 and all(t["health"] == "up" for t in active)

        wait_for(targets_up, 60, what="Prometheus to scrape both workers")
        groups = _get_json(prom + "/api/v1/rules")["data"]["groups"]
        shipped = {g["name"] for p in rule_files() for g in yaml.safe_load(p.read_text())["groups"]}
        assert shipped and {g["name"] for g in groups} == shipped
        assert _get_json(am + "/api/v2/status")["cluster"]["status"] in ("ready", "disabled")

        # Forwarded alerts reach Alertmanager (detractor follow-ups and, with the
        # demo's SLAs, CxSlaAtRisk come first, possibly before Prometheus has
        # scraped any window: the wallboard's tiles are waited for on their own).
        wait_for(lambda: _get_json(am + "/api/v2/alerts"), 90, what="alerts in Alertmanager")
        wait_for(
            lambda: _get_json(urls["wallboard"] + "api/board")["tiles"],
            60,
            what="tiles on the wallboard",
        )
        assert proc.wait(120) == 0, "\n".join(lines)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        reader.join(10)

    out = "\n".join(lines)
    final = out.split("demo: final reading", 1)[1]
    all_row = next(line for line in final.splitlines() if line.strip().startswith("all "))
    values = re.findall(NUMBER, all_row)
    assert len(values) >= 4, all_row  # NPS, CSAT, CES, FCR at least
    # The workers run with the demo's schedule: business time is published
    # and, over 24 h of working-hours traffic, below calendar time.
    head = next(line for line in final.splitlines() if line.strip().startswith("channel "))
    cols = dict(
        zip(re.split(r"\s{2,}", head.strip()), re.split(r"\s{2,}", all_row.strip()), strict=True)
    )
    calendar, business = cols["reply p90 24h"], cols["business p90 24h"]
    assert business != "-" and _seconds(business) <= _seconds(calendar), (head, all_row)
    channels = [
        line
        for line in final.splitlines()
        if re.match(r"^\s{2}(chat|email|phone|web|social)\s", line)
    ]
    assert len(channels) == 5, final
    assert re.search(r"processed [1-9]\d*", final), final
    assert "incident channel=email,team=billing" in final
    # Everything it started is gone.
    for url in (prom, am, urls["worker 1"], urls["worker 2"], urls["wallboard"]):
        assert not _reachable(url), f"{url} still answers after the demo ended"
    print(final)


def _seconds(text: str) -> float:
    """The view's durations: 42s, 3m07s, 2h05m."""
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    assert m and text, text
    h, mi, sec = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + sec
