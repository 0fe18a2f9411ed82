"""The realistic generator: determinism, desks, seasonality, incidents, `generate`.

The incident test recomputes the default alert conditions (24h NPS and CSAT,
1h first-response p90, with their sample-size guards) naively from the
generated events, independently of the pipeline's windows.
"""

from __future__ import annotations

import collections
import datetime as dt
import io
import math
import subprocess
import sys
from typing import Any

import orjson
import pytest

from streams.domain.model import Rejection
from streams.domain.validation import decode
from streams.errors import CxError
from streams.generate import generate
from streams.traffic import CHANNELS, TEAMS, Incident, Seasonality, TrafficGenerator
from tests.support import REPO

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC).timestamp()  # a Wednesday


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def _take(gen: TrafficGenerator, start: float, rate: float, until: float) -> list[dict[str, Any]]:
    out = []
    for occurred, ev in gen.stream(start, rate):
        if occurred > until:
            break
        out.append(ev)
    return out


def test_the_same_seed_gives_the_same_events_and_another_seed_others() -> None:
    a = _take(TrafficGenerator(seed=3), NOW, 1.0, NOW + 3600)
    b = _take(TrafficGenerator(seed=3), NOW, 1.0, NOW + 3600)
    c = _take(TrafficGenerator(seed=4), NOW, 1.0, NOW + 3600)
    assert a == b
    assert len(a) > 1000
    assert a != c


def test_the_existing_api_still_works() -> None:
    gen = TrafficGenerator()
    story = gen.ticket_story(NOW)
    assert story[0]["type"] == "ticket.created"
    assert {e["ticket_id"] for e in story if "ticket_id" in e} == {story[0]["ticket_id"]}
    assert all(_ts(e["occurred_at"]) >= NOW for e in story)


def test_every_desk_gets_traffic_and_every_event_is_valid() -> None:
    events = _take(TrafficGenerator(seed=11), NOW - 6 * 3600, 0.5, NOW - 60)
    desks = {(e["channel"], e["team"]) for e in events if e["type"] == "ticket.created"}
    assert desks == {(c, t) for c in CHANNELS for t in TEAMS}
    now_us = int(NOW * 1e6)
    for ev in events:
        source = "tickets" if ev["type"].startswith("ticket.") else "surveys"
        result = decode(orjson.dumps(ev), source, now_us)
        assert not isinstance(result, Rejection), (ev, result)


@pytest.mark.parametrize(("zone", "busy_utc_hour"), [("UTC", 11), ("Asia/Tokyo", 3)])
def test_working_hours_of_the_zone_are_busiest(zone: str, busy_utc_hour: int) -> None:
    gen = TrafficGenerator(seed=5, seasonality=Seasonality(zone))
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC).timestamp()  # Monday 00:00 UTC
    hours: collections.Counter[int] = collections.Counter()
    weekend = weekday = 0
    for t, _ in gen.arrivals(start, 0.2):
        if t > start + 7 * 86400:
            break
        moment = dt.datetime.fromtimestamp(t, dt.UTC)
        if moment.weekday() < 5:
            hours[moment.hour] += 1
            weekday += 1
        else:
            weekend += 1
    quiet = (busy_utc_hour + 12) % 24
    assert hours[busy_utc_hour] > 5 * hours[quiet]
    assert weekday / 5 > 2 * weekend / 2  # a weekday has over twice a weekend day's tickets


def test_an_unknown_zone_and_a_bad_incident_are_errors() -> None:
    with pytest.raises(CxError, match="--timezone"):
        Seasonality("Mars/Olympus")
    with pytest.raises(CxError, match="unknown team"):
        Incident.parse("team=nobody", NOW, NOW + 60)
    with pytest.raises(CxError, match="channel=NAME"):
        Incident.parse("desk=email", NOW, NOW + 60)


class DeskWindows:
    """Naive rolling numbers for one desk, from events in arrival order."""

    def __init__(self, channel: str, team: str) -> None:
        self.key = (channel, team)
        self.tickets: dict[str, float] = {}  # ticket_id -> created
        self.nps: list[tuple[float, int]] = []
        self.csat: list[tuple[float, int]] = []
        self.frt: list[tuple[float, float]] = []  # (reply time, seconds)
        self.answered: set[str] = set()

    def feed(self, ev: dict[str, Any]) -> None:
        kind, tid = ev["type"], ev.get("ticket_id")
        t = _ts(ev["occurred_at"])
        if kind == "ticket.created" and (ev["channel"], ev["team"]) == self.key:
            self.tickets[tid] = t
        elif kind == "ticket.replied" and ev["author"] == "agent" and tid in self.tickets:
            if tid not in self.answered:
                self.answered.add(tid)
                self.frt.append((t, max(0.0, t - self.tickets[tid])))
        elif (
            kind in ("survey.nps", "survey.csat")
            and (ev.get("channel"), ev.get("team")) == self.key
        ):
            (self.nps if kind == "survey.nps" else self.csat).append((t, ev["score"]))

    def alerts(self, now: float) -> set[str]:
        def within(rows: list[Any], span: float) -> list[Any]:
            return [r for r in rows if now - span < r[0] <= now]

        firing = set()
        nps = [s for _, s in within(self.nps, 86400)]
        if len(nps) >= 30:
            score = 100 * (sum(s >= 9 for s in nps) - sum(s <= 6 for s in nps)) / len(nps)
            if score < 0:
                firing.add("CxNpsLow")
        csat = [s for _, s in within(self.csat, 86400)]
        if len(csat) >= 30 and sum(s >= 4 for s in csat) / len(csat) < 0.70:
            firing.add("CxCsatLow")
        frt = sorted(d for _, d in within(self.frt, 3600))
        if len(frt) >= 20:
            p90 = frt[math.ceil(0.9 * len(frt)) - 1]  # nearest rank
            if p90 > 14400:
                firing.add("CxFirstResponseSlow")
        return firing


def test_an_incident_fires_the_default_alerts_and_they_resolve_after_it() -> None:
    """The demo's set-up: thin seasonal history, then live traffic at 20
    events/s with a 5-minute incident starting 30 s in."""
    from streams.demo.sender import EVENTS_PER_TICKET, history

    desk = DeskWindows("email", "billing")
    for ev in history(7, 2.0, "UTC", NOW):
        desk.feed(ev)
    assert desk.alerts(NOW) == set()

    start, end = NOW + 30, NOW + 330
    incident = Incident.parse("team=billing,channel=email", start, end)
    gen = TrafficGenerator(seed=8, seasonality=None, incidents=[incident], id_prefix="l")
    seen: dict[float, set[str]] = {}
    checkpoints = [NOW + s * 30 for s in range(1, 61)]
    for occurred, ev in gen.stream(NOW, 20 / EVENTS_PER_TICKET):
        while checkpoints and max(occurred, _ts(ev["occurred_at"])) > checkpoints[0]:
            seen[checkpoints[0]] = desk.alerts(checkpoints[0])
            checkpoints.pop(0)
        if not checkpoints:
            break
        desk.feed(ev)
    during = set().union(*(a for t, a in seen.items() if start < t <= end))
    assert during == {"CxNpsLow", "CxCsatLow", "CxFirstResponseSlow"}, seen
    assert seen[end] == during, "all three fire before the incident ends"
    recovered = incident.end_s + incident.recovery * (incident.end_s - incident.start_s)
    assert all(not a for t, a in seen.items() if t >= recovered), seen
    assert not seen[NOW + 30], "nothing fires before the incident"


def test_generate_writes_exactly_n_valid_lines_with_a_few_redeliveries() -> None:
    out = io.BytesIO()
    start, end = NOW - 2 * 86400, NOW
    assert generate(out, 20_000, 9, start, end) == 20_000
    lines = out.getvalue().splitlines()
    assert len(lines) == 20_000
    docs = [orjson.loads(line) for line in lines]
    times = [_ts(d["occurred_at"]) for d in docs]
    assert start - 1 <= min(times) and max(times) <= end
    assert max(times) > end - 3 * 3600, "the span is covered to its end"
    counts = collections.Counter(d["event_id"] for d in docs)
    repeats = sum(c - 1 for c in counts.values())
    assert 0.03 * len(lines) < repeats < 0.07 * len(lines)
    now_us = int(NOW * 1e6)
    for d in docs[:2000]:
        source = "tickets" if d["type"].startswith("ticket.") else "surveys"
        assert not isinstance(decode(orjson.dumps(d), source, now_us), Rejection)
    again = io.BytesIO()
    generate(again, 20_000, 9, start, end)
    assert again.getvalue() == out.getvalue()


def test_generate_command_line() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "generate",
            "--events",
            "500",
            "--seed",
            "2",
            "--start",
            "2026-01-05T00:00:00+01:00",
            "--days",
            "1",
        ],
        capture_output=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 500
    first = _ts(orjson.loads(lines[0])["occurred_at"])
    assert dt.datetime(2026, 1, 4, 23, tzinfo=dt.UTC).timestamp() <= first
