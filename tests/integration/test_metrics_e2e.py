"""End to end on a real broker: real worker processes, events produced with
kafka-python, numbers read from /metrics and compared with naive figures."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.integration import scenario as sc_mod
from tests.support import (
    Topics,
    WorkerProcess,
    produce,
    read_topic,
    samples,
    total,
    utc,
    value,
    wait_for,
)

pytestmark = pytest.mark.integration


def promtool_check(text: str) -> None:
    """`promtool check metrics` on a real scrape: names, types, help, units."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus); run scripts/setup.sh"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"promtool check metrics failed:\n{result.stdout}{result.stderr}"


def test_nps_single_worker(kafka_bootstrap: str, topics: Topics, workdir: Path) -> None:
    """The walking skeleton: NPS responses in, counters and the 24h NPS out."""
    worker = WorkerProcess(kafka_bootstrap, topics, workdir)
    try:
        worker.wait_ready()
        now = time.time()
        scores = [10, 9, 9, 8, 7, 6, 3, 0, 10, 10]  # 5 promoters, 2 passives, 3 detractors
        docs = [
            {
                "event_id": f"nps-{i}",
                "type": "survey.nps",
                "occurred_at": utc(now - 60 - i),
                "score": s,
                "channel": "Chat",
                "team": "billing",
            }
            for i, s in enumerate(scores)
        ]
        produce(kafka_bootstrap, topics.surveys, docs)

        def done() -> dict | None:
            smp = samples(worker.scrape())
            n = total(smp, "cx_nps_responses_total", channel="chat", team="billing")
            return smp if n == len(scores) else None

        smp = wait_for(done, 90, what="10 NPS responses counted")
        labels = {"channel": "chat", "team": "billing"}
        assert value(smp, "cx_nps_responses_total", category="promoter", **labels) == 5
        assert value(smp, "cx_nps_responses_total", category="passive", **labels) == 2
        assert value(smp, "cx_nps_responses_total", category="detractor", **labels) == 3
        assert value(smp, "cx_nps_score", window="24h", **labels) == pytest.approx(20.0)
        assert value(smp, "cx_events_total", source="surveys", outcome="accepted") == 10
        # Contract 8.1: adjusted Wald bounds at the default 95 %, computed here.
        n = 10 + 3
        p, d = (5 + 0.75) / n, (3 + 0.75) / n
        half = 1.959963984540054 * ((p + d - (p - d) ** 2) / n) ** 0.5
        for bound, want in (("lower", 100 * (p - d - half)), ("upper", 100 * (p - d + half))):
            got = value(smp, "cx_nps_score_bound", window="24h", bound=bound, **labels)
            assert got == pytest.approx(want, rel=1e-9), bound
        assert value(smp, "cx_ces_score_bound", window="24h", bound="lower", **labels) is None
        promtool_check(worker.scrape())
        # ?name[]= selects samples by name, as prometheus_client's handler does.
        picked = samples(worker.get("/metrics?name[]=cx_nps_score&name[]=cx_events_total").decode())
        assert {name for name, _ in picked} == {"cx_nps_score", "cx_events_total"}
        assert picked == {
            k: v for k, v in smp.items() if k[0] in ("cx_nps_score", "cx_events_total")
        }
    finally:
        worker.stop()


def _assert_close(actual: float | None, want: float, what: str, rel: float = 1e-9) -> None:
    assert actual is not None, f"{what}: series missing (want {want})"
    assert actual == pytest.approx(want, rel=rel, abs=1e-6), f"{what}: got {actual}, want {want}"


@pytest.mark.parametrize("delivery", ["batch", "stream"])
def test_mixed_scenario_two_workers(
    kafka_bootstrap: str, topics: Topics, workdir: Path, delivery: str
) -> None:
    """A few thousand events with duplicates, out-of-order created, reopens,
    bots, clock skew and linked surveys, processed by two workers: every
    contract metric summed over both /metrics equals the naive figures.
    Both ways records reach the stages (a fetch at a time, and Faust's
    streams) give the same numbers."""
    workers = [
        WorkerProcess(kafka_bootstrap, topics, workdir / f"w{i}", extra=("--delivery", delivery))
        for i in range(2)
    ]
    try:
        for w in workers:
            w.wait_ready()

        # Both workers own partitions and the group has settled (no
        # rebalance or table recovery in flight) before any traffic.
        def settled() -> bool:
            health = [w.health() or {} for w in workers]
            return (
                all(h.get("active_partitions") for h in health)
                and sum(len(h.get("active_partitions", [])) for h in health) == 4
                and all(h.get("recovered") and not h.get("rebalancing") for h in health)
            )

        wait_for(settled, 120, what="the 4 partitions shared by two settled workers")
        time.sleep(2)
        assert settled(), "the group rebalanced again"
        scn = sc_mod.build(time.time())
        produce(kafka_bootstrap, topics.tickets, scn.tickets, key_field="ticket_id")
        n_created = len({e["ticket_id"] for e in scn.tickets})

        def scrape_all() -> list[dict]:
            return [samples(w.scrape()) for w in workers]

        def summed(name: str, **labels: str) -> float:
            return sum(total(s, name, **labels) for s in scrape_all())

        # Inheritance of a ticket's dims needs its created processed first.
        wait_for(
            lambda: summed("cx_tickets_created_total") == n_created,
            180,
            what=f"{n_created} tickets created",
        )
        produce(kafka_bootstrap, topics.surveys, scn.surveys, key_field="ticket_id")
        n_surveys = len({s["event_id"] for s in scn.surveys})
        wait_for(
            lambda: (
                sum(
                    summed(m)
                    for m in (
                        "cx_nps_responses_total",
                        "cx_csat_responses_total",
                        "cx_ces_responses_total",
                    )
                )
                == n_surveys
            ),
            180,
            what=f"{n_surveys} survey responses",
        )
        time.sleep(3)  # let trailing corrections land
        scrapes = [w.scrape() for w in workers]
        for text in scrapes:
            promtool_check(text)
        per_worker = [samples(t) for t in scrapes]
        scrape_now = time.time()
        exp = sc_mod.expected(scn, scrape_now)

        def got(name: str, **labels: str) -> float:
            return sum(total(s, name, **labels) for s in per_worker)

        # Each rolling-window series is published by exactly one worker.
        window_series = [
            {k for k in s if k[0].startswith(("cx_nps_score", "cx_fcr_window", "cx_csat_window"))}
            for s in per_worker
        ]
        assert not (window_series[0] & window_series[1]), "a window series came from both workers"
        assert window_series[0] and window_series[1], "both workers should own some keys"

        # Pipeline outcomes.
        dup_tickets = len(scn.tickets) - len({e["event_id"] for e in scn.tickets})
        dup_surveys = len(scn.surveys) - n_surveys
        _assert_close(
            got("cx_events_total", source="tickets", outcome="accepted"),
            len(scn.tickets) - dup_tickets,
            "tickets accepted",
        )
        _assert_close(
            got("cx_events_total", source="tickets", outcome="duplicate"),
            dup_tickets,
            "ticket dups",
        )
        _assert_close(
            got("cx_events_total", source="surveys", outcome="duplicate"),
            dup_surveys,
            "survey dups",
        )
        _assert_close(
            got("cx_events_late_total", source="surveys"), exp.late_surveys, "late surveys"
        )
        _assert_close(got("cx_events_invalid_total"), 0, "no invalid events")

        checked = 0
        for key, want in exp.counters.items():
            kind, ch, team, *rest = key
            d = {"channel": ch, "team": team}
            if kind == "created":
                _assert_close(
                    got("cx_tickets_created_total", priority=rest[0], **d), want, str(key)
                )
            elif kind == "resolved":
                _assert_close(
                    got(
                        "cx_tickets_resolved_total",
                        priority=rest[0],
                        first_contact=str(rest[1]).lower(),
                        **d,
                    ),
                    want,
                    str(key),
                )
            elif kind == "reopened":
                _assert_close(
                    got("cx_tickets_reopened_total", priority=rest[0], **d), want, str(key)
                )
            elif kind == "open":
                _assert_close(got("cx_tickets_open", priority=rest[0], **d), want, str(key))
            elif kind == "frt_count":
                _assert_close(
                    got("cx_first_response_seconds_count", priority=rest[0], **d), want, str(key)
                )
            elif kind == "frt_sum":
                _assert_close(
                    got("cx_first_response_seconds_sum", priority=rest[0], **d),
                    want,
                    str(key),
                    1e-6,
                )
            elif kind == "res_count":
                _assert_close(
                    got("cx_resolution_seconds_count", priority=rest[0], **d), want, str(key)
                )
            elif kind == "res_sum":
                _assert_close(
                    got("cx_resolution_seconds_sum", priority=rest[0], **d), want, str(key), 1e-6
                )
            elif kind == "nps":
                _assert_close(got("cx_nps_responses_total", category=rest[0], **d), want, str(key))
            elif kind == "csat":
                _assert_close(got("cx_csat_responses_total", score=rest[0], **d), want, str(key))
            elif kind == "ces":
                _assert_close(got("cx_ces_responses_total", score=rest[0], **d), want, str(key))
            else:
                raise AssertionError(key)
            checked += 1

        # Rolling windows, per key and window, including ratios and absence.
        keys = {(ch, team) for (_, ch, team, *_) in exp.counters}
        for w in sc_mod.WINDOWS:
            for ch, team in keys:
                d = {"window": w, "channel": ch, "team": team}
                nps = {
                    c: exp.windows.get(("nps", w, ch, team, c), 0)
                    for c in ("promoter", "passive", "detractor")
                }
                n = sum(nps.values())
                for c, v in nps.items():
                    _assert_close(
                        got("cx_nps_window_responses", category=c, **d), v, f"nps {c} {d}"
                    )
                if n:
                    _assert_close(
                        got("cx_nps_score", **d),
                        100 * (nps["promoter"] - nps["detractor"]) / n,
                        f"nps {d}",
                    )
                else:
                    assert not any(value(s, "cx_nps_score", **d) is not None for s in per_worker), (
                        f"empty NPS {d}"
                    )
                csat = {s: exp.windows.get(("csat", w, ch, team, str(s)), 0) for s in range(1, 6)}
                nc = sum(csat.values())
                for s, v in csat.items():
                    _assert_close(
                        got("cx_csat_window_responses", score=str(s), **d), v, f"csat {s} {d}"
                    )
                if nc:
                    _assert_close(
                        got("cx_csat_ratio", **d), (csat[4] + csat[5]) / nc, f"csat ratio {d}"
                    )
                else:
                    assert not any(value(s, "cx_csat_ratio", **d) is not None for s in per_worker)
                ces_n = exp.windows.get(("ces_count", w, ch, team), 0)
                if ces_n:
                    _assert_close(
                        got("cx_ces_score", **d),
                        exp.windows[("ces_sum", w, ch, team)] / ces_n,
                        f"ces {d}",
                    )
                else:
                    assert not any(value(s, "cx_ces_score", **d) is not None for s in per_worker)
                fc_t = exp.windows.get(("fcr", w, ch, team, True), 0)
                fc_f = exp.windows.get(("fcr", w, ch, team, False), 0)
                _assert_close(
                    got("cx_fcr_window_tickets", first_contact="true", **d), fc_t, f"fcr true {d}"
                )
                _assert_close(
                    got("cx_fcr_window_tickets", first_contact="false", **d), fc_f, f"fcr false {d}"
                )
                if fc_t + fc_f:
                    _assert_close(got("cx_fcr_ratio", **d), fc_t / (fc_t + fc_f), f"fcr ratio {d}")
                else:
                    assert not any(value(s, "cx_fcr_ratio", **d) is not None for s in per_worker)
                for kind, metric in (
                    ("frt", "cx_first_response_window_seconds"),
                    ("res", "cx_resolution_window_seconds"),
                ):
                    vals = exp.durations.get((kind, w, ch, team), [])
                    _assert_close(got(f"{metric}_count", **d), len(vals), f"{metric} count {d}")
                    _assert_close(got(f"{metric}_sum", **d), sum(vals), f"{metric} sum {d}", 1e-6)
                    for q in (0.5, 0.9, 0.99):
                        if vals:
                            est = got(metric, quantile=f"{q:g}", **d)
                            exact = sc_mod.nearest_rank(vals, q)
                            assert abs(est - exact) <= 0.02 * exact + 1e-6, (
                                f"{metric} q{q} {d}: {est} vs {exact}"
                            )
                checked += 1
        assert checked > 50
    finally:
        for w in workers:
            w.stop()


def test_produce_command_routes_by_type(
    kafka_bootstrap: str, topics: Topics, workdir: Path
) -> None:
    """`cxstream produce FILE` sends each line to its input topic by type."""
    lines = [
        {
            "event_id": "p1",
            "type": "ticket.created",
            "occurred_at": utc(time.time()),
            "ticket_id": "T1",
        },
        {"event_id": "p2", "type": "survey.csat", "occurred_at": utc(time.time()), "score": 4},
        {
            "event_id": "p3",
            "type": "ticket.resolved",
            "occurred_at": utc(time.time()),
            "ticket_id": "T1",
        },
    ]
    path = workdir / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in lines) + b"\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "produce",
            str(path),
            "--bootstrap",
            kafka_bootstrap,
            "--tickets-topic",
            topics.tickets,
            "--surveys-topic",
            topics.surveys,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    tickets = read_topic(kafka_bootstrap, topics.tickets)
    surveys = read_topic(kafka_bootstrap, topics.surveys)
    assert sorted(r.value for r in tickets) == sorted(orjson.dumps(d) for d in (lines[0], lines[2]))
    assert [r.value for r in surveys] == [orjson.dumps(lines[1])]
    assert {r.key for r in tickets} == {b"T1"}  # keyed by ticket so one ticket stays in order
