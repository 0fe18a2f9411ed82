"""The wallboard's JSON document, built from Prometheus query results (pure)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from streams.board.aggregate import (
    METRICS,
    SAMPLE_NAMES,
    Sample,
    by_channel,
    by_desk,
    group,
    overall,
    window_order,
)

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


def _values(components: Any) -> dict[str, dict[str, float | None]]:
    return {m: {"value": _clean(v), "n": n} for m, (v, n) in components.values().items()}


def tiles(samples: list[Sample]) -> dict[str, dict[str, dict[str, float | None]]]:
    """window -> metric -> {value, n} over all keys."""
    return {w: _values(c) for w, c in group(samples, overall).get((), {}).items()}


def trends(by_time: Mapping[float, list[Sample]]) -> dict[str, dict[str, list[list[float | None]]]]:
    """window -> metric -> [[unix seconds, value or null], ...] over all keys."""
    out: dict[str, dict[str, list[list[float | None]]]] = {}
    for ts in sorted(by_time):
        for window, comps in group(by_time[ts], overall).get((), {}).items():
            per_metric = out.setdefault(window, {m: [] for m in METRICS})
            for metric, (value, _) in comps.values().items():
                per_metric[metric].append([ts, _clean(value)])
    return out


def desks(samples: list[Sample]) -> dict[str, Any]:
    """Channel x team cells and per-channel rows, per window."""
    cells = [
        {"channel": key[0], "team": key[1], "windows": {w: _values(c) for w, c in per_w.items()}}
        for key, per_w in sorted(group(samples, by_desk).items())
    ]
    channels = {
        key[0]: {w: _values(c) for w, c in per_w.items()}
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


def document(
    samples: list[Sample],
    by_time: Mapping[float, list[Sample]],
    alerts: Iterable[Mapping[str, Any]],
    pipeline: Mapping[str, Any],
    now_s: float,
) -> dict[str, Any]:
    tile_values = tiles(samples)
    return {
        "generated_at": now_s,
        "windows": window_order(tile_values),
        "metrics": list(METRICS),
        "tiles": tile_values,
        "trends": trends(by_time),
        "desks": desks(samples),
        "alerts": firing_alerts(alerts),
        "pipeline": dict(pipeline),
    }
