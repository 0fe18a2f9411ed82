"""Rolling-window numbers across dims keys, from published samples.

The wallboard (samples from Prometheus) and the demo's terminal view (samples
from the workers' /metrics) both show NPS, CSAT, CES, FCR and first-response
p90 per window for all keys, per channel and per desk. Ratios and scores of
different keys cannot be averaged, so each is rebuilt from the additive
window components (responses and tickets per category), which is exact.
Window quantiles cannot be merged exactly; across keys, the p90 is that of
the mixture of the keys' distributions, each interpolated through its
published quantiles (exact when one key holds all the observations, within
about 10 % of the pooled quantile on log-normal data otherwise).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.domain.confidence import csat_bounds, nps_bounds

#: the samples these numbers are built from (Prometheus selects them by name)
SAMPLE_NAMES = (
    "cx_nps_window_responses",
    "cx_csat_window_responses",
    "cx_ces_score",
    "cx_ces_window_responses",
    "cx_fcr_window_tickets",
    "cx_first_response_window_seconds",
    "cx_first_response_window_seconds_count",
)
#: the numbers shown with a confidence interval (rebuilt from the counts, like
#: the point estimates, so the interval of several keys is that of their pool)
BOUNDED = ("nps", "csat")
METRICS = ("nps", "csat", "ces", "fcr", "frt_p90")
#: labels that split one key's series, or say where it was scraped from
_NOT_KEY = frozenset(
    {"window", "quantile", "category", "score", "first_contact", "instance", "job"}
)


class Sample(NamedTuple):
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class Components:
    """Additive parts of one window for one or more keys."""

    nps: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("promoter", "passive", "detractor"), 0.0)
    )
    csat_top: float = 0.0
    csat_all: float = 0.0
    ces_sum: float = 0.0
    ces_count: float = 0.0
    fcr_true: float = 0.0
    fcr_all: float = 0.0
    #: per key: observations, {quantile: seconds}
    frt: dict[tuple[str, ...], tuple[float, dict[float, float]]] = field(default_factory=dict)
    _ces_scores: dict[tuple[str, ...], float] = field(default_factory=dict)
    _ces_counts: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add(self, s: Sample, key: tuple[str, ...]) -> None:
        v = s.value
        if math.isnan(v):
            return
        if s.name == "cx_nps_window_responses":
            cat = s.labels.get("category", "")
            if cat in self.nps:
                self.nps[cat] += v
        elif s.name == "cx_csat_window_responses":
            self.csat_all += v
            if s.labels.get("score") in ("4", "5"):
                self.csat_top += v
        elif s.name == "cx_ces_score":
            self._ces_scores[key] = v
        elif s.name == "cx_ces_window_responses":
            self._ces_counts[key] = v
        elif s.name == "cx_fcr_window_tickets":
            self.fcr_all += v
            if s.labels.get("first_contact") == "true":
                self.fcr_true += v
        elif s.name == "cx_first_response_window_seconds_count":
            count, qs = self.frt.get(key, (0.0, {}))
            self.frt[key] = (v, qs)
        elif s.name == "cx_first_response_window_seconds" and "quantile" in s.labels:
            count, qs = self.frt.get(key, (0.0, {}))
            qs[float(s.labels["quantile"])] = v
            self.frt[key] = (count, qs)

    def _settle_ces(self) -> None:
        for key, score in self._ces_scores.items():
            n = self._ces_counts.get(key, 0.0)
            self.ces_sum += score * n
            self.ces_count += n
        self._ces_scores.clear()

    def values(self) -> dict[str, tuple[float | None, float]]:
        """metric -> (value or None when the window is empty, sample size)."""
        self._settle_ces()
        n_nps = sum(self.nps.values())
        frt_n = sum(c for c, _ in self.frt.values())
        return {
            "nps": (
                100 * (self.nps["promoter"] - self.nps["detractor"]) / n_nps if n_nps else None,
                n_nps,
            ),
            "csat": (self.csat_top / self.csat_all if self.csat_all else None, self.csat_all),
            "ces": (self.ces_sum / self.ces_count if self.ces_count else None, self.ces_count),
            "fcr": (self.fcr_true / self.fcr_all if self.fcr_all else None, self.fcr_all),
            "frt_p90": (mixture_quantile(0.9, list(self.frt.values())), frt_n),
        }

    def bounds(self, z: float) -> dict[str, tuple[float, float] | None]:
        """metric -> (lower, upper) at the normal quantile z, None when empty.

        The worker's own formulas (streams.domain.confidence); for one key
        they give exactly its published cx_*_bound gauges. Counts are whole
        numbers published as floats.
        """
        n_nps = round(sum(self.nps.values()))
        nps = nps_bounds(round(self.nps["promoter"]), round(self.nps["detractor"]), n_nps, z)
        csat = csat_bounds(round(self.csat_top), round(self.csat_all), z)
        return {
            "nps": None if nps is None else (nps.lower, nps.upper),
            "csat": None if csat is None else (csat.lower, csat.upper),
        }


def mixture_quantile(q: float, parts: list[tuple[float, dict[float, float]]]) -> float | None:
    """The q-quantile of a mixture of distributions known by count and quantiles."""
    parts = [(n, qs) for n, qs in parts if n > 0 and q in qs and not math.isnan(qs[q])]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1][q]
    curves = [(n, _cdf_points(qs)) for n, qs in parts]
    total = sum(n for n, _ in curves)

    def mixed(x: float) -> float:
        return sum(n * _interp(points, x) for n, points in curves) / total

    lo, hi = 0.0, max(points[-1][0] for _, points in curves)
    for _ in range(100):
        mid = (lo + hi) / 2
        if mixed(mid) < q:
            lo = mid
        else:
            hi = mid
    return hi


def _cdf_points(qs: Mapping[float, float]) -> list[tuple[float, float]]:
    points = [(0.0, 0.0)]
    for p in sorted(qs):
        x = max(qs[p], points[-1][0])
        points.append((x, p))
    last_x, last_p = points[-1]
    if last_p < 1.0:
        # The tail past the highest quantile: as long (in log scale) as the
        # step before it.
        prev_x = points[-2][0]
        ratio = last_x / prev_x if prev_x > 0 else 2.0
        points.append((max(last_x * ratio, last_x + 1e-9), 1.0))
    return points


def _interp(points: list[tuple[float, float]], x: float) -> float:
    """The CDF through the points: linear from 0, log-linear between positive
    points (durations are right-skewed, near log-normal)."""
    if x <= points[0][0]:
        return 0.0
    for (x0, p0), (x1, p1) in itertools.pairwise(points):
        if x <= x1:
            if x1 == x0:
                return p1
            if x0 <= 0:
                return p0 + (p1 - p0) * (x - x0) / (x1 - x0)
            return p0 + (p1 - p0) * math.log(x / x0) / math.log(x1 / x0)
    return 1.0


GroupKey = Callable[[Mapping[str, str]], tuple[str, ...]]


def group(samples: Iterable[Sample], by: GroupKey) -> dict[tuple[str, ...], dict[str, Components]]:
    """Components per group and window; `by` maps a sample's labels to its group."""
    out: dict[tuple[str, ...], dict[str, Components]] = {}
    for s in samples:
        window = s.labels.get("window")
        if window is None or s.name not in SAMPLE_NAMES:
            continue
        key = tuple(f"{k}={v}" for k, v in sorted(s.labels.items()) if k not in _NOT_KEY)
        out.setdefault(by(s.labels), {}).setdefault(window, Components()).add(s, key)
    return out


def overall(labels: Mapping[str, str]) -> tuple[str, ...]:
    return ()


def by_channel(labels: Mapping[str, str]) -> tuple[str, ...]:
    return (labels.get("channel", "unknown"),)


def by_desk(labels: Mapping[str, str]) -> tuple[str, ...]:
    return (labels.get("channel", "unknown"), labels.get("team", "unknown"))


def window_order(names: Iterable[str]) -> list[str]:
    """Window names shortest first ('1h' < '24h' < '7d')."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}

    def seconds(name: str) -> float:
        for unit in ("ms", "s", "m", "h", "d"):
            if name.endswith(unit) and name[: -len(unit)].isdigit():
                return int(name[: -len(unit)]) * units[unit]
        return math.inf

    return sorted(set(names), key=lambda n: (seconds(n), n))
