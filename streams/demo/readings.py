"""What the demo's terminal view shows, read from the workers and Alertmanager.

The workers' /metrics are read directly (not through Prometheus) so the view
moves as soon as events are processed; each worker publishes the keys it
owns, so their samples together cover every key once.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from streams.board.aggregate import (
    Components,
    Sample,
    by_channel,
    group,
    mixture_quantile,
    overall,
)

#: (column title, metric, window): the windows the default alert rules use
COLUMNS = (
    ("NPS 24h", "nps", "24h"),
    ("CSAT 24h", "csat", "24h"),
    ("CES 24h", "ces", "24h"),
    ("1st reply p90 1h", "frt_p90", "1h"),
    # Over 24 h, nights and evenings are in the window: calendar and business
    # time of the same replies differ there.
    ("reply p90 24h", "frt_p90", "24h"),
    ("business p90 24h", "frt_business_p90", "24h"),
    ("FCR 7d", "fcr", "7d"),
)
_BUSINESS = "cx_first_response_business_window_seconds"


def business_p90(
    samples: list[Sample], channel: str | None
) -> dict[str, tuple[float | None, float]]:
    """window -> (first-response p90 in business time, replies) for one
    channel (None: all), merged across keys as the calendar p90 is."""
    parts: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, dict[float, float]]] = {}
    for s in samples:
        if not s.name.startswith(_BUSINESS) or "window" not in s.labels:
            continue
        if channel is not None and s.labels.get("channel") != channel:
            continue
        key = (
            s.labels["window"],
            tuple(sorted((k, v) for k, v in s.labels.items() if k in ("channel", "team"))),
        )
        count, qs = parts.get(key, (0.0, {}))
        if s.name == _BUSINESS + "_count":
            count = s.value
        elif s.name == _BUSINESS and s.labels.get("quantile"):
            qs[float(s.labels["quantile"])] = s.value
        parts[key] = (count, qs)
    by_window: dict[str, list[tuple[float, dict[float, float]]]] = {}
    for (window, _), part in parts.items():
        by_window.setdefault(window, []).append(part)
    return {w: (mixture_quantile(0.9, ps), sum(n for n, _ in ps)) for w, ps in by_window.items()}


@dataclass
class Reading:
    at: float
    workers_up: int
    #: channel ('all' first) -> column title -> (value or None, sample size)
    rows: dict[str, dict[str, tuple[float | None, float]]] = field(default_factory=dict)
    events: dict[str, float] = field(default_factory=dict)  # outcome -> count
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alertmanager_ok: bool = False

    @property
    def processed(self) -> float:
        return sum(self.events.values())


def _get(url: str, timeout: float = 3.0) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bytes(resp.read())
    except (OSError, ValueError):
        return None


def scrape(urls: Sequence[str]) -> tuple[list[Sample], int]:
    samples: list[Sample] = []
    up = 0
    for url in urls:
        body = _get(url + "/metrics")
        if body is None:
            continue
        up += 1
        for family in text_string_to_metric_families(body.decode()):
            samples.extend(Sample(s.name, s.labels, s.value) for s in family.samples)
    return samples, up


def rows(samples: list[Sample]) -> dict[str, dict[str, tuple[float | None, float]]]:
    out: dict[str, dict[str, tuple[float | None, float]]] = {}
    groups: dict[tuple[str, ...], dict[str, Components]] = {
        ("all",): group(samples, overall).get((), {})
    }
    groups.update(sorted(group(samples, by_channel).items()))
    for key, per_window in groups.items():
        values = {w: c.values() for w, c in per_window.items()}
        business = business_p90(samples, None if key == ("all",) else key[0])
        for window, figure in business.items():
            values.setdefault(window, {})["frt_business_p90"] = figure
        out[key[0]] = {
            title: values.get(window, {}).get(metric, (None, 0.0))
            for title, metric, window in COLUMNS
        }
    return out


def summarise(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (alert, desk) with the sources that raised it and how many.

    A desk alert usually arrives twice, from cxstream and from Prometheus'
    copy of the rule; a detractor follow-up arrives once per response.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for a in alerts:
        key = (a["alertname"], a["desk"])
        row = rows.setdefault(key, {**a, "count": 0, "sources": set()})
        row["count"] += 1
        row["sources"].add(a["source"])
        row["since"] = min(row["since"], a["since"])
    out = [{**r, "sources": sorted(r["sources"])} for r in rows.values()]
    order = {"critical": 0, "warning": 1, "info": 2}
    out.sort(key=lambda a: (order.get(a["severity"], 9), a["alertname"], a["desk"]))
    return out


def alertmanager_alerts(url: str) -> tuple[list[dict[str, Any]], bool]:
    body = _get(url + "/api/v2/alerts?active=true&silenced=false&inhibited=false")
    if body is None:
        return [], False
    alerts = []
    for a in orjson.loads(body):
        labels = a.get("labels", {})
        alerts.append(
            {
                "alertname": labels.get("alertname", "?"),
                "severity": labels.get("severity", ""),
                "desk": "/".join(x for x in (labels.get("channel"), labels.get("team")) if x),
                "source": labels.get("source", "cxstream"),
                "since": a.get("startsAt", ""),
            }
        )
    return alerts, True


def read(worker_urls: Sequence[str], alertmanager_url: str) -> Reading:
    samples, up = scrape(worker_urls)
    events: dict[str, float] = {}
    for s in samples:
        if s.name == "cx_events_total":
            outcome = s.labels.get("outcome", "?")
            events[outcome] = events.get(outcome, 0.0) + s.value
    alerts, am_ok = alertmanager_alerts(alertmanager_url)
    return Reading(time.time(), up, rows(samples), events, alerts, am_ok)
