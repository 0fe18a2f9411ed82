"""Confidence intervals (contract 8.1) against a direct computation of the
formulas, against statsmodels/scipy (test-only dependencies), and a
confidence: true rule judged on a bound with explicit snapshots."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from streams.domain.alerting import AlertBook
from streams.domain.confidence import (
    WindowBounds,
    ces_bounds,
    csat_bounds,
    nps_bounds,
    t_cdf,
    t_quantile,
    z_quantile,
)
from streams.domain.model import DurationSummary, WindowSnapshot
from streams.domain.rules import Bounds, Rule

S = 1_000_000
T0 = 1_700_000_000 * S
LABELS = {"channel": "chat", "team": "billing"}
LEVELS = (0.8, 0.9, 0.95, 0.99, 0.999)


# ---------------------------------------------------------------------------
# Quantiles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_z_is_the_two_sided_normal_quantile(level: float) -> None:
    z = z_quantile(level)
    assert z == pytest.approx(stats.norm.ppf(1 - (1 - level) / 2), rel=1e-12)
    assert NormalDist().cdf(z) - NormalDist().cdf(-z) == pytest.approx(level, abs=1e-12)


@pytest.mark.parametrize("level", (0.5, *LEVELS, 0.9999))
@pytest.mark.parametrize(
    "df",
    [*range(1, 41), 50, 99, 100, 250, 500, 999, 1000, 1001, 2000, 10**4, 10**6, 10**9],
)
def test_t_quantile_matches_scipy(level: float, df: int) -> None:
    expected = stats.t.ppf(1 - (1 - level) / 2, df)
    assert t_quantile(level, df) == pytest.approx(expected, rel=1e-11)


@settings(max_examples=300, deadline=None)
@given(
    t=st.floats(-200, 200, allow_nan=False),
    df=st.integers(1, 1000),
)
def test_t_cdf_matches_scipy(t: float, df: int) -> None:
    assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-10, abs=1e-14)


def test_quantile_inputs_are_checked() -> None:
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="between 0 and 1"):
            z_quantile(bad)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile(0.95, 0)


# ---------------------------------------------------------------------------
# NPS: adjusted Wald, written out again with exact fractions
# ---------------------------------------------------------------------------


def adjusted_wald(promoters: int, detractors: int, n: int, z: float) -> tuple[float, float]:
    n_adj = Fraction(n + 3)
    p = (promoters + Fraction(3, 4)) / n_adj
    d = (detractors + Fraction(3, 4)) / n_adj
    v = p + d - (p - d) ** 2
    half = z * math.sqrt(v / n_adj)
    center = float(p - d)
    return max(-100.0, 100 * (center - half)), min(100.0, 100 * (center + half))


def test_readme_example_small_team() -> None:
    """31 responses, 10 promoters, 11 detractors: NPS -3.2, 95 % interval
    about -30 to +24, so CxNpsLow with confidence must not fire."""
    bounds = nps_bounds(10, 11, 31, z_quantile(0.95))
    assert bounds is not None
    lower, upper = bounds
    point = 100 * (10 - 11) / 31
    assert point == pytest.approx(-3.2258, abs=1e-4)
    assert (lower, upper) == pytest.approx(adjusted_wald(10, 11, 31, z_quantile(0.95)), rel=1e-12)
    assert lower == pytest.approx(-30.2672, abs=1e-4)
    assert upper == pytest.approx(24.3848, abs=1e-4)


@settings(max_examples=400, deadline=None)
@given(
    counts=st.tuples(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 5000)),
    level=st.sampled_from(LEVELS),
)
def test_nps_bounds_are_the_contract_formula(counts: tuple[int, int, int], level: float) -> None:
    promoters, passives, detractors = counts
    n = promoters + passives + detractors
    got = nps_bounds(promoters, detractors, n, z_quantile(level))
    if n == 0:
        assert got is None
        return
    assert got is not None
    assert (got.lower, got.upper) == pytest.approx(
        adjusted_wald(promoters, detractors, n, z_quantile(level)), rel=1e-12, abs=1e-12
    )
    assert -100.0 <= got.lower <= got.upper <= 100.0


def test_nps_bounds_clip_at_the_scale() -> None:
    b = nps_bounds(3, 0, 3, z_quantile(0.95))
    assert b is not None and b.upper == 100.0 and b.lower < 100.0
    b = nps_bounds(0, 2, 2, z_quantile(0.999))
    assert b is not None and b.lower == -100.0


# ---------------------------------------------------------------------------
# CSAT: Wilson, against statsmodels
# ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    n=st.integers(1, 100_000),
    share=st.floats(0, 1),
    level=st.sampled_from(LEVELS),
)
def test_csat_bounds_are_statsmodels_wilson(n: int, share: float, level: float) -> None:
    top2 = round(n * share)
    got = csat_bounds(top2, n, z_quantile(level))
    assert got is not None
    lo, hi = proportion_confint(top2, n, alpha=1 - level, method="wilson")
    assert (got.lower, got.upper) == pytest.approx((lo, hi), rel=1e-9, abs=1e-12)


def test_csat_bounds_formula_and_empty() -> None:
    z = z_quantile(0.95)
    b = csat_bounds(20, 30, z)
    assert b is not None
    p, n = 20 / 30, 30
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (b.lower, b.upper) == pytest.approx((center - half, center + half), rel=1e-12)
    assert csat_bounds(0, 0, z) is None


# ---------------------------------------------------------------------------
# CES: t interval from count, sum and sum of squares
# ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    scores=st.lists(st.integers(1, 7), min_size=0, max_size=400),
    level=st.sampled_from(LEVELS),
)
def test_ces_bounds_are_the_t_interval(scores: list[int], level: float) -> None:
    n = len(scores)
    got = ces_bounds(n, sum(scores), sum(s * s for s in scores), level)
    if n < 2:
        assert got is None
        return
    assert got is not None
    mean = sum(scores) / n
    sd = math.sqrt(sum((s - mean) ** 2 for s in scores) / (n - 1))
    half = stats.t.ppf(1 - (1 - level) / 2, n - 1) * sd / math.sqrt(n)
    expected = (max(1.0, mean - half), min(7.0, mean + half))
    assert (got.lower, got.upper) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert 1.0 <= got.lower <= got.upper <= 7.0


def test_ces_identical_scores_have_a_zero_width_interval() -> None:
    assert ces_bounds(5, 20, 80, 0.95) == Bounds(4.0, 4.0)


# ---------------------------------------------------------------------------
# WindowBounds over snapshots, and confidence: true rules
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapWithSq(WindowSnapshot):
    """A snapshot whose window keeps the CES sum of squares."""

    ces_sum_sq: int = 0


def snap(
    nps: tuple[int, int, int] = (0, 0, 0),
    csat: dict[int, int] | None = None,
    ces: list[int] | None = None,
) -> SnapWithSq:
    scores = ces or []
    return SnapWithSq(
        window="24h",
        nps={"promoter": nps[0], "passive": nps[1], "detractor": nps[2]},
        csat={s: (csat or {}).get(s, 0) for s in range(1, 6)},
        ces_count=len(scores),
        ces_sum=sum(scores),
        fcr={True: 0, False: 0},
        first_response=DurationSummary(0, 0, {}),
        resolution=DurationSummary(0, 0, {}),
        ces_sum_sq=sum(s * s for s in scores),
    )


def test_window_bounds_reads_each_metric() -> None:
    wb = WindowBounds(0.9)
    s = snap(nps=(10, 10, 11), csat={5: 20, 2: 10}, ces=[3, 4, 5, 6])
    assert wb("nps_score", s) == nps_bounds(10, 11, 31, z_quantile(0.9))
    assert wb("csat_ratio", s) == csat_bounds(20, 30, z_quantile(0.9))
    assert wb("ces_score", s) == ces_bounds(4, 18, 86, 0.9)
    assert wb("fcr_ratio", s) is None
    assert wb("nps_score", snap()) is None
    plain = WindowSnapshot(
        **{k: getattr(s, k) for k in WindowSnapshot.__slots__ if k != "ces_sum_sq"}  # type: ignore[arg-type]
    )
    assert plain.ces_sum_sq is None
    assert wb("ces_score", plain) is None  # no sum of squares: no CES bounds
    assert wb.level == 0.9


CONF_NPS = Rule("CxNpsLowSure", "nps_score", "24h", "<", 0.0, min_samples=30, confidence=True)


def test_confidence_rule_does_not_fire_on_the_readme_example() -> None:
    """NPS -3.2 breaches 'below 0', but the upper bound +24.4 does not."""
    book = AlertBook()
    s = snap(nps=(10, 10, 11))
    assert s.nps_score is not None and s.nps_score < 0
    assert book.evaluate([CONF_NPS], LABELS, {"24h": s}, T0, WindowBounds()) == []
    plain = Rule("CxNpsLowPlain", "nps_score", "24h", "<", 0.0, min_samples=30)
    assert [e.status for e in AlertBook().evaluate([plain], LABELS, {"24h": s}, T0)] == ["firing"]


def test_confidence_rule_fires_when_the_upper_bound_is_below_and_carries_both() -> None:
    book = AlertBook()
    s = snap(nps=(10, 10, 60))  # NPS -62.5, upper bound well below 0
    events = book.evaluate([CONF_NPS], LABELS, {"24h": s}, T0, WindowBounds(0.95))
    assert [e.status for e in events] == ["firing"]
    expected = nps_bounds(10, 60, 80, z_quantile(0.95))
    assert expected is not None and expected.upper < 0
    ann = events[0].annotations
    assert float(ann["lower_bound"]) == expected.lower
    assert float(ann["upper_bound"]) == expected.upper
    assert ann["confidence"] == "0.95"
    assert events[0].value == pytest.approx(-62.5)
    # Point value still below 0, upper bound back above 0: it resolves.
    s2 = snap(nps=(30, 10, 40))
    assert s2.nps_score is not None and s2.nps_score < 0
    later = book.evaluate([CONF_NPS], LABELS, {"24h": s2}, T0 + S, WindowBounds(0.95))
    assert [e.status for e in later] == ["resolved"]
    assert later[0].annotations["upper_bound"] == ann["upper_bound"]


def test_confidence_rule_without_a_bounds_source_never_fires() -> None:
    s = snap(nps=(0, 0, 100))
    assert AlertBook().evaluate([CONF_NPS], LABELS, {"24h": s}, T0) == []


def test_greater_than_rule_uses_the_lower_bound() -> None:
    rule = Rule("CesHigh", "ces_score", "24h", ">", 4.0, confidence=True, min_samples=2)
    wb = WindowBounds(0.95)
    book = AlertBook()
    wide = snap(ces=[7, 3])  # mean 5 > 4 but the lower bound is 1
    assert book.evaluate([rule], LABELS, {"24h": wide}, T0, wb) == []
    tight = snap(ces=[5, 5, 5, 6, 5, 5, 6, 5])
    bounds = wb("ces_score", tight)
    assert bounds is not None and bounds.lower > 4.0
    events = book.evaluate([rule], LABELS, {"24h": tight}, T0 + S, wb)
    assert [e.status for e in events] == ["firing"]
    assert float(events[0].annotations["lower_bound"]) == bounds.lower
    # One response left: no CES bound at all, so the alert resolves.
    gone = book.evaluate([rule], LABELS, {"24h": snap(ces=[6])}, T0 + 2 * S, wb)
    assert [e.status for e in gone] == ["resolved"]


def test_confidence_rule_hysteresis_applies_to_the_bound() -> None:
    rule = Rule(
        "CsatLowSure", "csat_ratio", "24h", "<", 0.7, resolve_threshold=0.8, confidence=True
    )
    wb = WindowBounds(0.95)
    book = AlertBook()
    low = snap(csat={5: 100, 1: 200})  # upper bound ~0.39
    assert [e.status for e in book.evaluate([rule], LABELS, {"24h": low}, T0, wb)] == ["firing"]
    mid = snap(csat={5: 750, 1: 250})  # upper bound ~0.776: between 0.7 and 0.8
    b = wb("csat_ratio", mid)
    assert b is not None and 0.7 < b.upper < 0.8
    assert book.evaluate([rule], LABELS, {"24h": mid}, T0 + S, wb) == []
    high = snap(csat={5: 850, 1: 150})
    out = book.evaluate([rule], LABELS, {"24h": high}, T0 + 2 * S, wb)
    assert [e.status for e in out] == ["resolved"]


def test_confidence_needs_a_metric_with_an_interval() -> None:
    with pytest.raises(ValueError, match="no confidence interval"):
        Rule("X", "fcr_ratio", "7d", "<", 0.5, confidence=True)
