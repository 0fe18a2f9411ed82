"""Confidence intervals of the window scores (contract 8.1), pure and exact
to float precision, without scipy.

* NPS: adjusted Wald (Rocks 2016), as the contract writes it: n' = n + 3,
  P' = (promoters + 0.75) / n', D' = (detractors + 0.75) / n',
  V' = P' + D' - (P' - D')^2, bounds 100 ((P' - D') -/+ z sqrt(V' / n')),
  clipped to [-100, 100].
* CSAT: the Wilson score interval of the top-2-box share (no continuity
  correction), the one statsmodels' ``proportion_confint(method="wilson")``
  computes.
* CES: mean -/+ t(n-1) s / sqrt(n) with the sample standard deviation s,
  from the window's count, sum and sum of squares; clipped to [1, 7]; none
  for n < 2.

``z`` is the two-sided normal quantile of the level (``statistics.NormalDist``);
``t`` the Student's t quantile with n - 1 degrees of freedom, computed here by
inverting the t distribution's CDF, written with the regularized incomplete
beta function (continued fraction), by safeguarded Newton steps. Above
``_T_SERIES_DF`` degrees of freedom the Cornish-Fisher series in 1/df is
used instead (its error there is far below float precision of the result,
and the incomplete beta's log-gamma terms would lose digits).
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Final

from streams.domain.model import WindowSnapshot
from streams.domain.rules import Bounds

__all__ = [
    "DEFAULT_CONFIDENCE",
    "Bounds",
    "WindowBounds",
    "ces_bounds",
    "check_level",
    "csat_bounds",
    "nps_bounds",
    "t_cdf",
    "t_quantile",
    "z_quantile",
]

DEFAULT_CONFIDENCE: Final = 0.95
_T_SERIES_DF: Final = 1000
_CF_EPS: Final = 1e-16
_CF_TINY: Final = 1e-300
_CF_MAX_ITER: Final = 10_000


def check_level(level: float) -> None:
    if not (isinstance(level, float | int) and 0.0 < level < 1.0):
        raise ValueError(f"confidence level {level!r} is not between 0 and 1 (exclusive)")


@lru_cache(maxsize=64)
def z_quantile(level: float) -> float:
    """Two-sided normal quantile: 1.959963984540054 for 0.95."""
    check_level(level)
    return NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)


# ---------------------------------------------------------------------------
# Student's t
# ---------------------------------------------------------------------------


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    h = d
    for m in range(1, _CF_MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _CF_TINY else _CF_TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _CF_TINY else _CF_TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge (a={a}, b={b}, x={x})")


def _betainc(a: float, b: float, x: float, one_minus_x: float) -> float:
    """Regularized incomplete beta I_x(a, b); ``one_minus_x`` is passed in
    separately so that it keeps its digits when x is close to 1."""
    if x <= 0.0:
        return 0.0
    if one_minus_x <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + a * math.log(x)
        + b * math.log(one_minus_x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, one_minus_x) / b


def _t_tail(t: float, df: float) -> float:
    """P(T > t) for t >= 0."""
    denom = df + t * t
    return 0.5 * _betainc(df / 2.0, 0.5, df / denom, t * t / denom)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) of Student's t with ``df`` degrees of freedom."""
    tail = _t_tail(abs(t), df)
    return 1.0 - tail if t >= 0 else tail


def _t_pdf(t: float, df: float) -> float:
    log_pdf = (
        math.lgamma((df + 1.0) / 2.0)
        - math.lgamma(df / 2.0)
        - 0.5 * math.log(df * math.pi)
        - (df + 1.0) / 2.0 * math.log1p(t * t / df)
    )
    return math.exp(log_pdf)


def _t_series(z: float, df: float) -> float:
    """Cornish-Fisher expansion of the t quantile in powers of 1/df."""
    z2 = z * z
    g1 = (z2 + 1.0) * z / 4.0
    g2 = ((5.0 * z2 + 16.0) * z2 + 3.0) * z / 96.0
    g3 = (((3.0 * z2 + 19.0) * z2 + 17.0) * z2 - 15.0) * z / 384.0
    g4 = ((((79.0 * z2 + 776.0) * z2 + 1482.0) * z2 - 1920.0) * z2 - 945.0) * z / 92160.0
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


@lru_cache(maxsize=4096)
def t_quantile(level: float, df: int) -> float:
    """Two-sided Student's t quantile: t with P(|T| <= t) = level, df >= 1
    (12.706204736174707 for 0.95 and df = 1)."""
    check_level(level)
    if df < 1:
        raise ValueError(f"degrees of freedom {df} must be >= 1")
    z = z_quantile(level)
    if df > _T_SERIES_DF:
        return _t_series(z, float(df))
    target = (1.0 - level) / 2.0
    lo, hi = 0.0, max(2.0 * z, 1.0)
    while _t_tail(hi, df) > target:
        lo, hi = hi, hi * 2.0
    t = min(max(_t_series(z, float(df)), lo), hi)
    for _ in range(200):
        excess = _t_tail(t, df) - target  # > 0: t too small
        if excess > 0:
            lo = t
        else:
            hi = t
        step = excess / _t_pdf(t, df)
        nxt = t + step
        if not lo < nxt < hi:  # Newton left the bracket: bisect instead
            nxt = (lo + hi) / 2.0
        if abs(nxt - t) <= 4e-16 * max(1.0, abs(nxt)):
            return nxt
        t = nxt
    return t


# ---------------------------------------------------------------------------
# The three intervals
# ---------------------------------------------------------------------------


def nps_bounds(promoters: int, detractors: int, responses: int, z: float) -> Bounds | None:
    """Adjusted Wald interval of NPS (-100..100); None for no responses."""
    if responses <= 0:
        return None
    n_adj = responses + 3.0
    p_adj = (promoters + 0.75) / n_adj
    d_adj = (detractors + 0.75) / n_adj
    diff = p_adj - d_adj
    var = p_adj + d_adj - diff * diff
    half = z * math.sqrt(var / n_adj)
    return Bounds(max(-100.0, 100.0 * (diff - half)), min(100.0, 100.0 * (diff + half)))


def csat_bounds(top2: int, responses: int, z: float) -> Bounds | None:
    """Wilson score interval of the share of 4-5 scores (0..1); None for no responses."""
    if responses <= 0:
        return None
    n = float(responses)
    p = top2 / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return Bounds(max(0.0, center - half), min(1.0, center + half))


def ces_bounds(count: int, total: int, sum_sq: int, level: float) -> Bounds | None:
    """t interval of the mean CES (1..7) from count, sum and sum of squares
    of the scores; None for fewer than two responses."""
    if count < 2:
        return None
    # n * sum_sq - sum^2 is an exact integer (n^2 times the population
    # variance), so no cancellation error reaches the square root.
    spread = count * sum_sq - total * total
    variance = max(spread, 0) / (count * (count - 1.0))
    half = t_quantile(level, count - 1) * math.sqrt(variance / count)
    mean = total / count
    return Bounds(max(1.0, mean - half), min(7.0, mean + half))


class WindowBounds:
    """The bounds of a window snapshot's score metrics at one confidence level
    (an ``alerting.BoundsSource``).

    CES needs the window's sum of squares, read from the snapshot's
    ``ces_sum_sq`` attribute: a snapshot without it has no CES bounds.
    """

    def __init__(self, level: float = DEFAULT_CONFIDENCE) -> None:
        check_level(level)
        self._level = float(level)
        self.z = z_quantile(self._level)

    @property
    def level(self) -> float:
        return self._level

    def __call__(self, metric: str, snap: WindowSnapshot) -> Bounds | None:
        if metric == "nps_score":
            return nps_bounds(
                snap.nps["promoter"], snap.nps["detractor"], snap.nps_responses, self.z
            )
        if metric == "csat_ratio":
            return csat_bounds(snap.csat[4] + snap.csat[5], snap.csat_responses, self.z)
        if metric == "ces_score":
            sum_sq = getattr(snap, "ces_sum_sq", None)
            if sum_sq is None:
                return None
            return ces_bounds(snap.ces_count, snap.ces_sum, int(sum_sq), self._level)
        return None
