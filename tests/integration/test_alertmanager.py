"""Forwarding alert events to Alertmanager.

The integration tests run Debian's real ``prometheus-alertmanager`` on a free
loopback port with the shipped config. The others use a small in-process HTTP
server to provoke what a real Alertmanager rarely does on demand (rejections,
outages mid-batch).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from streams.alertmanager import AlertmanagerForwarder
from streams.domain.alerting import AlertBook
from streams.domain.model import DurationSummary, SurveyResponse, WindowSnapshot
from streams.domain.rules import DetractorConfig, RuleSet, default_ruleset
from tests.support import REPO, free_port

CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
S = 1_000_000
LABELS = {"channel": "chat", "team": "billing"}
RULES = default_ruleset(["1h", "24h", "7d", "30d"])


def _nps(promoters: int, detractors: int) -> WindowSnapshot:
    return WindowSnapshot(
        window="24h",
        nps={"promoter": promoters, "passive": 0, "detractor": detractors},
        csat=dict.fromkeys(range(1, 6), 0),
        ces_count=0,
        ces_sum=0,
        fcr={True: 0, False: 0},
        first_response=DurationSummary(0, 0, {}),
        resolution=DurationSummary(0, 0, {}),
    )


def _events(now_us: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Real alert events from the rule engine: (firing, resolved), all in the
    past. The detractor alert lives 60 s here instead of 24 h."""
    rules = RuleSet(rules=RULES.rules, detractor=DetractorConfig(resolve_after_s=60))
    book = AlertBook()
    firing = book.evaluate(rules, LABELS, {"24h": _nps(0, 40)}, now_us - 120 * S)
    firing += book.detractor(
        SurveyResponse(
            event_id="resp-1",
            type="survey.nps",
            occurred_us=now_us - 200 * S,
            score=2,
            dims=dict(LABELS),
            ticket_id="T-1",
            comment="nobody answered",
            respondent_id="cust-1",
        ),
        LABELS,
        now_us - 100 * S,
        rules.detractor,
    )
    resolved = book.evaluate(rules, LABELS, {"24h": _nps(40, 0)}, now_us - 10 * S)
    return [e.to_dict() for e in firing], [e.to_dict() for e in resolved]


# ---------------------------------------------------------------------------
# A real Alertmanager
# ---------------------------------------------------------------------------


@dataclass
class Alertmanager:
    url: str
    port: int
    storage: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        if binary is None:
            message = (
                "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager)"
            )
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={CONFIG}",
                    f"--storage.path={self.storage}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # no gossip port: a single local instance
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"alertmanager exited with {self.proc.returncode}:\n{self.log.read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        pytest.fail(f"alertmanager not ready after 30 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: what Alertmanager holds as not yet resolved."""
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as resp:
            return list(json.loads(resp.read()))


@pytest.fixture()
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    port = free_port()
    storage = tmp_path / "am-data"
    storage.mkdir()
    am = Alertmanager(f"http://127.0.0.1:{port}", port, storage, tmp_path / "alertmanager.log")
    try:
        yield am
    finally:
        am.stop()


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


@pytest.mark.integration
def test_firing_alerts_reach_alertmanager_and_resolve(alertmanager: Alertmanager) -> None:
    now_us = time.time_ns() // 1000
    firing, resolved = _events(now_us)
    assert [d["labels"]["alertname"] for d in firing] == ["CxNpsLow", "CxDetractorResponse"]
    assert [d["status"] for d in resolved] == ["resolved", "resolved"]

    async def scenario() -> None:
        forwarder = AlertmanagerForwarder(
            alertmanager.url,
            resend_interval_s=1.0,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            timeout_s=3.0,
            generator_url="http://cxstream.test/alerts",
        )
        await forwarder.start()
        try:
            # Alertmanager is still down: the loop must keep retrying.
            for doc in firing:
                forwarder.submit(doc)
            await asyncio.sleep(0.6)
            assert forwarder.failing and forwarder.active_count == 2
            await asyncio.to_thread(alertmanager.start)

            def both_present() -> bool:
                names = {a["labels"]["alertname"] for a in alertmanager.alerts()}
                return names == {"CxNpsLow", "CxDetractorResponse"}

            await _until(both_present, 20, "both alerts in Alertmanager")
            assert not forwarder.failing
            got = {
                a["labels"]["alertname"]: a for a in await asyncio.to_thread(alertmanager.alerts)
            }
            for doc in firing:
                alert = got[doc["labels"]["alertname"]]
                assert alert["labels"] == doc["labels"]
                assert alert["annotations"] == doc["annotations"]
                # Alertmanager keeps milliseconds.
                skew = abs(_parse(alert["startsAt"]) - _parse(doc["startsAt"]))
                assert skew.total_seconds() < 0.001
                assert alert["status"]["state"] == "active"
                assert alert["generatorURL"] == "http://cxstream.test/alerts"
            assert got["CxDetractorResponse"]["labels"]["event_id"] == "resp-1"
            assert got["CxDetractorResponse"]["annotations"]["respondent_id"] == "cust-1"

            # Active alerts are re-posted periodically: endsAt keeps moving on.
            first_end = _parse(got["CxNpsLow"]["endsAt"])

            def refreshed() -> bool:
                for a in alertmanager.alerts():
                    if a["labels"]["alertname"] == "CxNpsLow":
                        return _parse(a["endsAt"]) > first_end
                return False

            await _until(refreshed, 10, "a periodic re-post of the active alert")

            # Resolution: posted at once, and Alertmanager stops holding them.
            for doc in resolved:
                forwarder.submit(doc)
            assert await forwarder.flush()
            assert forwarder.active_count == 0 and forwarder.pending_resolved_count == 0

            def all_resolved() -> bool:
                now = datetime.now(UTC)
                mine = [
                    a
                    for a in alertmanager.alerts()
                    if a["labels"].get("alertname") in {"CxNpsLow", "CxDetractorResponse"}
                ]
                return all(_parse(a["endsAt"]) <= now for a in mine)

            await _until(all_resolved, 10, "both alerts resolved")
            # The background loop has nothing more to re-post.
            await asyncio.sleep(1.5)
            assert await asyncio.to_thread(all_resolved)
        finally:
            await forwarder.stop()

    asyncio.run(scenario())


@pytest.mark.integration
def test_stop_delivers_pending_resolutions(alertmanager: Alertmanager) -> None:
    alertmanager.start()
    now_us = time.time_ns() // 1000
    firing, resolved = _events(now_us)

    async def scenario() -> None:
        forwarder = AlertmanagerForwarder(alertmanager.url, backoff_initial_s=30.0)
        await forwarder.start()
        for doc in firing:
            forwarder.submit(doc)
        assert await forwarder.flush()
        assert len(await asyncio.to_thread(alertmanager.alerts)) == 2
        for doc in resolved:
            forwarder.submit(doc)
        await forwarder.stop()  # must not leave the resolutions behind

    asyncio.run(scenario())
    assert alertmanager.alerts() == []


# ---------------------------------------------------------------------------
# A scripted stand-in, for rejections and outages
# ---------------------------------------------------------------------------


@dataclass
class FakeAm:
    url: str
    posts: list[list[dict[str, Any]]]
    mode: dict[str, Any]


async def _with_fake(body: Callable[[FakeAm], Awaitable[None]]) -> None:
    posts: list[list[dict[str, Any]]] = []
    mode: dict[str, Any] = {"status": 200, "reject": set()}

    async def handler(request: web.Request) -> web.Response:
        alerts = await request.json()
        posts.append(alerts)
        if mode["status"] != 200:
            return web.Response(status=mode["status"], text="unavailable")
        if any(a["labels"].get("alertname") in mode["reject"] for a in alerts):
            return web.Response(status=400, text='"bad alert"')
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/api/v2/alerts", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        await body(FakeAm(f"http://127.0.0.1:{port}/", posts, mode))
    finally:
        await runner.cleanup()


def _doc(alertname: str, status: str = "firing") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "fingerprint": f"{abs(hash(alertname)) % 16**16:016x}",
        "status": status,
        "labels": {"alertname": alertname, "severity": "warning", "window": "24h"},
        "annotations": {"summary": "s", "description": "d"},
        "startsAt": "2024-01-01T00:00:00.000000Z",
        "value": 1.0,
        "threshold": 0.0,
        "sample_size": 30,
    }
    if status == "resolved":
        doc["endsAt"] = "2024-01-01T01:00:00.000000Z"
    return doc


def test_a_rejected_alert_does_not_block_the_others() -> None:
    async def body(am: FakeAm) -> None:
        am.mode["reject"] = {"Bad"}
        fwd = AlertmanagerForwarder(am.url, resend_interval_s=3600)
        fwd.submit(_doc("Good"))
        fwd.submit(_doc("Bad"))
        fwd.submit(_doc("Gone", "resolved"))
        assert await fwd.flush()  # Alertmanager answered; the bad one is dropped
        assert fwd.active_count == 1 and fwd.pending_resolved_count == 0
        sent_alone = [p for p in am.posts if len(p) == 1]
        assert sorted(p[0]["labels"]["alertname"] for p in sent_alone) == ["Bad", "Gone", "Good"]
        await fwd.stop()

    asyncio.run(_with_fake(body))


def test_outage_retries_then_resolutions_are_sent_once() -> None:
    async def body(am: FakeAm) -> None:
        am.mode["status"] = 503
        fwd = AlertmanagerForwarder(
            am.url, resend_interval_s=3600, backoff_initial_s=0.05, backoff_max_s=0.2
        )
        await fwd.start()
        fwd.submit(_doc("A"))
        fwd.submit(_doc("B", "resolved"))
        await asyncio.sleep(0.5)
        assert fwd.failing and len(am.posts) >= 3  # retried with back-off
        assert fwd.active_count == 1 and fwd.pending_resolved_count == 1
        am.mode["status"] = 200
        deadline = time.monotonic() + 5
        while fwd.failing and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not fwd.failing and fwd.pending_resolved_count == 0
        delivered = len(am.posts)
        await asyncio.sleep(0.5)  # nothing new: no repeats of the resolution
        assert len(am.posts) == delivered
        last = am.posts[-1]
        assert {a["labels"]["alertname"] for a in last} == {"A", "B"}
        firing = next(a for a in last if a["labels"]["alertname"] == "A")
        assert _parse(firing["endsAt"]) > datetime.now(UTC)  # endsAt = now + 4 intervals
        await fwd.stop()

    asyncio.run(_with_fake(body))


def test_submit_never_raises() -> None:
    async def body(am: FakeAm) -> None:
        fwd = AlertmanagerForwarder(am.url)
        fwd.submit({"no": "labels"})
        await fwd.submit_bytes(b"not json")
        await fwd.submit_bytes(b"[1, 2]")
        await fwd.submit_bytes(json.dumps(_doc("Ok")).encode())
        assert fwd.active_count == 1
        # A repeat of the same firing alert is not a change.
        fwd.submit(_doc("Ok"))
        assert fwd.active_count == 1
        await fwd.stop()

    asyncio.run(_with_fake(body))


def test_unreachable_alertmanager_flush_returns_false() -> None:
    async def scenario() -> None:
        fwd = AlertmanagerForwarder(f"http://127.0.0.1:{free_port()}", timeout_s=2)
        fwd.submit(_doc("A"))
        assert await fwd.flush() is False
        assert fwd.failing and fwd.active_count == 1
        await fwd.stop()

    asyncio.run(scenario())


def test_runs_as_a_faust_app_service() -> None:
    async def body(am: FakeAm) -> None:
        fwd = AlertmanagerForwarder(am.url, resend_interval_s=3600)
        service = fwd.as_service()
        await service.start()
        fwd.submit(_doc("A"))
        deadline = time.monotonic() + 5
        while not am.posts and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert am.posts and am.posts[0][0]["labels"]["alertname"] == "A"
        await service.stop()

    asyncio.run(_with_fake(body))
