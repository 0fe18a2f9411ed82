"""The collector fed canned window snapshots, read back with the registry's
``get_sample_value`` (as prometheus_client tests its own collectors)."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from streams.domain.confidence import WindowBounds
from streams.domain.model import CountersSnapshot, DurationSummary, WindowSnapshot
from streams.exposition.collectors import CxCollector, KeyView


def snap(nps: tuple[int, int, int], csat: dict[int, int], ces: list[int]) -> WindowSnapshot:
    return WindowSnapshot(
        window="24h",
        nps={"promoter": nps[0], "passive": nps[1], "detractor": nps[2]},
        csat={s: csat.get(s, 0) for s in range(1, 6)},
        ces_count=len(ces),
        ces_sum=sum(ces),
        fcr={True: 0, False: 0},
        first_response=DurationSummary(0, 0, {}),
        resolution=DurationSummary(0, 0, {}),
        ces_sum_sq=sum(c * c for c in ces),
    )


def registry(*views: KeyView, level: float = 0.95) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(CxCollector(["channel", "team"], lambda: views, WindowBounds(level)))
    return reg


EMPTY = CountersSnapshot({}, {}, {}, {}, {}, {}, {}, {}, {})


def test_small_team_nps_interval_spans_zero() -> None:
    """The README example: 31 responses, 10 promoters, 11 detractors."""
    view = KeyView(("email", "billing"), [snap((10, 10, 11), {}, [])], EMPTY, {})
    reg = registry(view)
    labels = {"window": "24h", "channel": "email", "team": "billing"}
    assert reg.get_sample_value("cx_nps_score", labels) == 100 * (10 - 11) / 31
    lower = reg.get_sample_value("cx_nps_score_bound", {**labels, "bound": "lower"})
    upper = reg.get_sample_value("cx_nps_score_bound", {**labels, "bound": "upper"})
    # Direct computation of the contract's adjusted Wald formula, z for 95 %.
    z = 1.959963984540054
    n = 31 + 3
    p, d = (10 + 0.75) / n, (11 + 0.75) / n
    half = z * math.sqrt((p + d - (p - d) ** 2) / n)
    assert lower is not None and upper is not None
    assert math.isclose(lower, 100 * (p - d - half), rel_tol=1e-12)
    assert math.isclose(upper, 100 * (p - d + half), rel_tol=1e-12)
    assert round(lower, 1) == -30.3 and round(upper, 1) == 24.4


def test_bounds_absent_while_windows_are_empty_and_ces_needs_two() -> None:
    view = KeyView(("chat", "a"), [snap((0, 0, 0), {4: 3, 1: 1}, [5])], EMPTY, {})
    reg = registry(view)
    labels = {"window": "24h", "channel": "chat", "team": "a"}
    assert reg.get_sample_value("cx_nps_score_bound", {**labels, "bound": "lower"}) is None
    assert reg.get_sample_value("cx_ces_score_bound", {**labels, "bound": "lower"}) is None
    # Wilson for 3 of 4 at 90 %, computed directly.
    reg90 = registry(view, level=0.90)
    z = 1.6448536269514722
    n, phat = 4, 0.75
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n))
    low = reg90.get_sample_value("cx_csat_ratio_bound", {**labels, "bound": "lower"})
    high = reg90.get_sample_value("cx_csat_ratio_bound", {**labels, "bound": "upper"})
    assert low is not None and high is not None
    assert math.isclose(low, centre - half, rel_tol=1e-12)
    assert math.isclose(high, centre + half, rel_tol=1e-12)


def test_ces_t_interval_is_clipped_to_the_scale() -> None:
    view = KeyView(("web", "b"), [snap((0, 0, 0), {}, [7, 7, 6])], EMPTY, {})
    reg = registry(view)
    labels = {"window": "24h", "channel": "web", "team": "b", "bound": "upper"}
    assert reg.get_sample_value("cx_ces_score_bound", labels) == 7.0
    mean, s = 20 / 3, math.sqrt(((7 - 20 / 3) ** 2 * 2 + (6 - 20 / 3) ** 2) / 2)
    t975_df2 = 4.302652729911275
    low = reg.get_sample_value("cx_ces_score_bound", {**labels, "bound": "lower"})
    assert low is not None and math.isclose(low, mean - t975_df2 * s / math.sqrt(3), rel_tol=1e-9)
