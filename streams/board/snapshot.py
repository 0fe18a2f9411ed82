"""The wallboard's JSON document, built from Prometheus query results (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from streams.board.aggregate import (
    BOUNDED,
    METRICS,
    SAMPLE_NAMES,
    Sample,
    by_channel,
    by_desk,
    group,
    overall,
    window_order,
)
from streams.domain.confidence import z_quantile

#: one instant or range query fetches every component series
SELECTOR = '{__name__=~"' + "|".join(SAMPLE_NAMES) + '"}'
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _num(text: Any) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def _clean(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) or math.isinf(v) else v


def vector_samples(result: Iterable[Mapping[str, Any]]) -> list[Sample]:
    """An instant-vector result -> samples (labels without __name__)."""
    out = []
    for series in result:
        metric = dict(series["metric"])
        name = metric.pop("__name__", "")
        out.append(Sample(name, metric, _num(series["value"][1])))
    return out


def matrix_by_time(result: Iterable[Mapping[str, Any]]) -> dict[float, list[Sample]]:
    """A range-query matrix -> samples per evaluation timestamp."""
    out: dict[float, list[Sample]] = {}
    for series in result:
        metric = dict(series["metric"])
        name = metric.pop("__name__", "")
        for ts, text in series["values"]:
            out.setdefault(float(ts), []).append(Sample(name, metric, _num(text)))
    return out


def _values(components: Any, z: float) -> dict[str, dict[str, float | None]]:
    """metric -> {value, n} and, for NPS and CSAT, {lower, upper} (null when empty)."""
    out: dict[str, dict[str, float | None]] = {
        m: {"value": _clean(v), "n": n} for m, (v, n) in components.values().items()
    }
    for metric, b in components.bounds(z).items():
        out[metric]["lower"], out[metric]["upper"] = (None, None) if b is None else b
    return out


def tiles(samples: list[Sample], z: float) -> dict[str, dict[str, dict[str, float | None]]]:
    """window -> metric -> {value, n[, lower, upper]} over all keys."""
    return {w: _values(c, z) for w, c in group(samples, overall).get((), {}).items()}


def trends(
    by_time: Mapping[float, list[Sample]], z: float
) -> dict[str, dict[str, list[list[float | None]]]]:
    """window -> metric -> [[unix seconds, value or null], ...] over all keys;
    NPS and CSAT points carry their lower and upper bound too."""
    out: dict[str, dict[str, list[list[float | None]]]] = {}
    for ts in sorted(by_time):
        for window, comps in group(by_time[ts], overall).get((), {}).items():
            per_metric = out.setdefault(window, {m: [] for m in METRICS})
            for metric, entry in _values(comps, z).items():
                point = [ts, entry["value"]]
                if metric in BOUNDED:
                    point += [entry["lower"], entry["upper"]]
                per_metric[metric].append(point)
    return out


def desks(samples: list[Sample], z: float) -> dict[str, Any]:
    """Channel x team cells and per-channel rows, per window."""
    cells = [
        {
            "channel": key[0],
            "team": key[1],
            "windows": {w: _values(c, z) for w, c in per_w.items()},
        }
        for key, per_w in sorted(group(samples, by_desk).items())
    ]
    channels = {
        key[0]: {w: _values(c, z) for w, c in per_w.items()}
        for key, per_w in sorted(group(samples, by_channel).items())
    }
    return {
        "channels": sorted({c["channel"] for c in cells}),
        "teams": sorted({c["team"] for c in cells}),
        "cells": cells,
        "by_channel": channels,
    }


def firing_alerts(alerts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Prometheus /api/v1/alerts entries that are firing, most severe first."""
    out = []
    for a in alerts:
        if a.get("state") != "firing":
            continue
        labels = a.get("labels", {})
        out.append(
            {
                "alertname": labels.get("alertname", "?"),
                "severity": labels.get("severity", "none"),
                "channel": labels.get("channel"),
                "team": labels.get("team"),
                "window": labels.get("window"),
                "summary": a.get("annotations", {}).get("summary", ""),
                "since": a.get("activeAt"),
                "value": _clean(_num(a.get("value"))),
            }
        )
    out.sort(key=lambda a: (_SEVERITY_ORDER.get(a["severity"], 9), a["since"] or ""))
    return out


def sla_summary(
    pending: Iterable[Mapping[str, Any]],
    achieved: Iterable[Mapping[str, Any]],
    breaches: Iterable[Mapping[str, Any]],
) -> dict[str, Any] | None:
    """SLA numbers over all keys from three instant queries, None without SLAs.

    `pending`: sum by (state) (cx_sla_pending); `achieved`: min by (target)
    (cx_sla_achieved_ratio{window="24h"}) (ratios of keys do not add up, the
    lowest key is shown); `breaches`: sum by (target) (cx_sla_breaches_total),
    the workers' totals (an increase() would miss each key's first breach,
    which is when its series appears).
    """
    pending, achieved, breaches = list(pending), list(achieved), list(breaches)
    if not (pending or achieved or breaches):
        return None
    states = {"on_track": 0.0, "at_risk": 0.0, "breached": 0.0}
    for r in pending:
        state = r["metric"].get("state", "")
        if state in states:
            states[state] += _clean(_num(r["value"][1])) or 0.0
    return {
        "pending": states,
        "achieved_24h_lowest": {
            r["metric"].get("target", "?"): _clean(_num(r["value"][1])) for r in achieved
        },
        "breaches": {r["metric"].get("target", "?"): _clean(_num(r["value"][1])) for r in breaches},
    }


def document(
    samples: list[Sample],
    by_time: Mapping[float, list[Sample]],
    alerts: Iterable[Mapping[str, Any]],
    pipeline: Mapping[str, Any],
    now_s: float,
    confidence: float = 0.95,
    sla: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    z = z_quantile(confidence)
    tile_values = tiles(samples, z)
    return {
        "generated_at": now_s,
        "windows": window_order(tile_values),
        "metrics": list(METRICS),
        "confidence": confidence,
        "tiles": tile_values,
        "trends": trends(by_time, z),
        "desks": desks(samples, z),
        "alerts": firing_alerts(alerts),
        "pipeline": dict(pipeline),
        "sla": None if sla is None else dict(sla),
    }
