"""What a threshold rule reads from a window snapshot: the metrics it can
watch, their value and the sample size behind it (shared with the alert
state machine, which reads them again when an alert resolves)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from streams.domain.model import WindowSnapshot

__all__ = [
    "CONFIDENCE_METRICS",
    "METRICS",
    "OPS",
    "compare",
    "metric_sample_size",
    "metric_value",
]

#: Metrics a threshold rule can watch, with the words used in default texts.
METRICS: Final[Mapping[str, str]] = {
    "nps_score": "NPS",
    "csat_ratio": "CSAT ratio",
    "ces_score": "CES score",
    "fcr_ratio": "FCR ratio",
    "first_response_p50": "first-response p50 (s)",
    "first_response_p90": "first-response p90 (s)",
    "first_response_p99": "first-response p99 (s)",
    "resolution_p50": "resolution p50 (s)",
    "resolution_p90": "resolution p90 (s)",
    "resolution_p99": "resolution p99 (s)",
}
#: Metrics with a confidence interval (contract 8.1), so ``confidence: true``.
CONFIDENCE_METRICS: Final = ("nps_score", "csat_ratio", "ces_score")
OPS: Final = ("<", "<=", ">", ">=")

_QUANTILES: Final = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def metric_value(metric: str, snap: WindowSnapshot) -> float | None:
    """The metric's value in a window snapshot; None while it holds no sample."""
    if metric == "nps_score":
        return snap.nps_score
    if metric == "csat_ratio":
        return snap.csat_ratio
    if metric == "ces_score":
        return snap.ces_score
    if metric == "fcr_ratio":
        return snap.fcr_ratio
    family, _, quantile = metric.rpartition("_")
    summary = snap.first_response if family == "first_response" else snap.resolution
    if summary.count == 0:
        return None
    return summary.quantiles.get(_QUANTILES[quantile])


def metric_sample_size(metric: str, snap: WindowSnapshot) -> int:
    """How many observations the metric's value rests on (compared with min_samples)."""
    if metric == "nps_score":
        return snap.nps_responses
    if metric == "csat_ratio":
        return snap.csat_responses
    if metric == "ces_score":
        return snap.ces_count
    if metric == "fcr_ratio":
        return snap.fcr_tickets
    if metric.startswith("first_response_"):
        return snap.first_response.count
    return snap.resolution.count


def compare(op: str, value: float, threshold: float) -> bool:
    if op == "<":
        return value < threshold
    if op == "<=":
        return value <= threshold
    if op == ">":
        return value > threshold
    return value >= threshold
