"""Wallboard numbers across keys, against direct computations."""

from __future__ import annotations

import math
import random

import pytest

from streams.board.aggregate import Sample, by_channel, group, mixture_quantile, overall
from streams.board.snapshot import (
    document,
    firing_alerts,
    matrix_by_time,
    sla_summary,
    vector_samples,
)


def _key(channel: str, team: str, window: str = "24h", **extra: str) -> dict[str, str]:
    return {"channel": channel, "team": team, "window": window, **extra}


def _desk(
    channel: str, team: str, nps: tuple[int, int, int], csat: list[int], ces: tuple[float, int]
):
    out = [
        Sample("cx_nps_window_responses", _key(channel, team, category=c), float(n))
        for c, n in zip(("promoter", "passive", "detractor"), nps, strict=True)
    ]
    out += [
        Sample("cx_csat_window_responses", _key(channel, team, score=str(s + 1)), float(n))
        for s, n in enumerate(csat)
    ]
    out += [
        Sample("cx_ces_score", _key(channel, team), ces[0]),
        Sample("cx_ces_window_responses", _key(channel, team), float(ces[1])),
    ]
    return out


def test_totals_are_rebuilt_from_the_components() -> None:
    samples = _desk("email", "billing", (10, 5, 5), [1, 1, 0, 4, 4], (6.0, 10))
    samples += _desk("email", "sales", (0, 0, 10), [5, 0, 0, 0, 5], (3.0, 30))
    samples += _desk("chat", "sales", (3, 0, 1), [0, 0, 0, 0, 2], (5.0, 2))
    values = group(samples, overall)[()]["24h"].values()
    promoters, detractors, n = 13, 16, 34
    assert values["nps"] == (pytest.approx(100 * (promoters - detractors) / n), n)
    assert values["csat"] == (pytest.approx((8 + 5 + 2) / (10 + 10 + 2)), 22)
    assert values["ces"] == (pytest.approx((60 + 90 + 10) / 42), 42)
    email = group(samples, by_channel)[("email",)]["24h"].values()
    assert email["nps"][0] == pytest.approx(100 * (10 - 15) / 30)
    assert email["fcr"] == (None, 0.0)  # no tickets: absent, not zero


def test_the_mixture_p90_of_one_key_is_its_own_and_of_many_lies_between() -> None:
    one = {0.5: 60.0, 0.9: 300.0, 0.99: 900.0}
    assert mixture_quantile(0.9, [(10, one)]) == 300.0
    assert mixture_quantile(0.9, [(10, one), (5, dict(one))]) == pytest.approx(300.0, rel=1e-6)
    other = {0.5: 600.0, 0.9: 3000.0, 0.99: 9000.0}
    mixed = mixture_quantile(0.9, [(10, one), (10, other)])
    assert mixed is not None and 300.0 < mixed < 3000.0
    assert mixture_quantile(0.9, [(0, one)]) is None


def test_the_mixture_p90_is_close_to_the_pooled_p90() -> None:
    rng = random.Random(4)
    keys = [
        [rng.lognormvariate(mu, 0.8) for _ in range(n)]
        for mu, n in ((6, 400), (7.5, 300), (5, 800))
    ]

    def quantiles(xs: list[float]) -> dict[float, float]:
        s = sorted(xs)
        return {q: s[int(q * (len(s) - 1))] for q in (0.5, 0.9, 0.99)}

    pooled = sorted(x for k in keys for x in k)
    exact = pooled[int(0.9 * (len(pooled) - 1))]
    estimate = mixture_quantile(0.9, [(len(k), quantiles(k)) for k in keys])
    assert estimate == pytest.approx(exact, rel=0.1)


def test_prometheus_results_become_a_board_document() -> None:
    vector = [
        {"metric": {"__name__": "cx_nps_window_responses", "instance": "a:1", **_key("web", "sales", category="promoter")}, "value": [1.0, "3"]},
        {"metric": {"__name__": "cx_nps_window_responses", "instance": "b:1", **_key("web", "support", category="detractor")}, "value": [1.0, "1"]},
    ]  # fmt: skip
    matrix = [
        {"metric": vector[0]["metric"], "values": [[10, "1"], [20, "3"]]},
        {"metric": vector[1]["metric"], "values": [[20, "1"]]},
    ]
    alerts = [
        {"state": "pending", "labels": {"alertname": "CxNpsLow"}},
        {"state": "firing", "labels": {"alertname": "CxNpsLow", "severity": "warning", "channel": "web"}, "annotations": {"summary": "s"}, "activeAt": "2026-01-01T00:00:00Z", "value": "-5"},
        {"state": "firing", "labels": {"alertname": "CxFirstResponseSlow", "severity": "critical"}, "activeAt": "2026-01-01T00:01:00Z"},
    ]  # fmt: skip
    doc = document(vector_samples(vector), matrix_by_time(matrix), alerts, {}, 30.0)
    tile = doc["tiles"]["24h"]["nps"]
    assert {k: tile[k] for k in ("value", "n")} == {"value": 50.0, "n": 4.0}
    assert doc["confidence"] == 0.95 and doc["sla"] is None
    # The pooled interval: adjusted Wald of 3 promoters, 1 detractor in 4, z = 1.959964.
    assert (tile["lower"], tile["upper"]) == pytest.approx(_wald(3, 1, 4), abs=1e-4)
    assert doc["tiles"]["24h"]["csat"] == {"value": None, "n": 0.0, "lower": None, "upper": None}
    trend = doc["trends"]["24h"]["nps"]
    assert [p[:2] for p in trend] == [[10.0, 100.0], [20.0, 50.0]]
    assert trend[0][2:] == pytest.approx(_wald(1, 0, 1), abs=1e-4)
    assert [c["team"] for c in doc["desks"]["cells"]] == ["sales", "support"]
    assert doc["desks"]["by_channel"]["web"]["24h"]["nps"]["value"] == 50.0
    assert [a["alertname"] for a in doc["alerts"]] == ["CxFirstResponseSlow", "CxNpsLow"]
    assert firing_alerts(alerts)[1]["value"] == -5.0


def _wald(promoters: int, detractors: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    n_adj = n + 3
    p, d = (promoters + 0.75) / n_adj, (detractors + 0.75) / n_adj
    half = z * math.sqrt((p + d - (p - d) ** 2) / n_adj)
    return max(-100.0, 100 * (p - d - half)), min(100.0, 100 * (p - d + half))


def test_sla_summary_sums_pending_states_and_keeps_the_lowest_ratio() -> None:
    def r(value: str, **labels: str) -> dict[str, object]:
        return {"metric": labels, "value": [1.0, value]}

    assert sla_summary([], [], []) is None
    sla = sla_summary(
        [r("3", state="on_track"), r("2", state="at_risk")],
        [r("0.75", target="first_reply")],
        [r("NaN", target="resolution"), r("4", target="first_reply")],
    )
    assert sla == {
        "pending": {"on_track": 3.0, "at_risk": 2.0, "breached": 0.0},
        "achieved_24h_lowest": {"first_reply": 0.75},
        "breaches": {"resolution": None, "first_reply": 4.0},
    }
