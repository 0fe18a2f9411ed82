"""Writes the cxstream Grafana dashboards (deploy/grafana/dashboards/*.json).

    python deploy/grafana/generate.py          # rewrite the JSON files
    python deploy/grafana/generate.py --check  # exit 1 if they are stale

Plain dictionaries in Grafana's dashboard JSON model (schemaVersion 39), no
library: every panel reads the provisioned Prometheus datasource by its fixed
uid, and every query filters by the ``channel`` and ``team`` variables where
the metric has those labels. The output is committed; tests check both its
structure and that every query returns data from a real Prometheus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DATASOURCE_UID = "cxstream-prometheus"
DS = {"type": "prometheus", "uid": DATASOURCE_UID}
KEY = 'channel=~"$channel", team=~"$team"'
WKEY = 'window="$window", ' + KEY

Panel = dict[str, Any]


def target(expr: str, legend: str = "", fmt: str = "time_series", instant: bool = False) -> Any:
    t: dict[str, Any] = {"datasource": DS, "expr": expr, "refId": "A", "format": fmt}
    if legend:
        t["legendFormat"] = legend
    if instant:
        t["instant"], t["range"] = True, False
    return t


def panel(
    kind: str,
    title: str,
    targets: list[Any],
    w: int,
    h: int,
    unit: str = "short",
    description: str = "",
    **extra: Any,
) -> Panel:
    for i, t in enumerate(targets):
        t["refId"] = chr(ord("A") + i)
    p: Panel = {
        "type": kind,
        "title": title,
        "datasource": DS,
        "targets": targets,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if description:
        p["description"] = description
    p.update(extra)
    return p


def stat(title: str, expr: str, unit: str, description: str = "", **thresholds: Any) -> Panel:
    p = panel("stat", title, [target(expr, instant=True)], 4, 4, unit, description)
    if thresholds:
        p["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for c, v in thresholds["steps"]],
        }
    p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"}
    return p


def ts(
    title: str, targets: list[Any], unit: str = "short", w: int = 12, description: str = ""
) -> Panel:
    return panel("timeseries", title, targets, w, 8, unit, description)


def band(
    title: str, point: str, bound_metric: str, unit: str, scale: str = "", description: str = ""
) -> Panel:
    """The point estimate with its confidence interval drawn as a filled band.

    Intervals of different keys do not combine: with one channel and one team
    selected the band is that key's interval; with several, it spans the
    lowest lower and the highest upper bound among them.
    """
    lower = f'{scale}min(cx_{bound_metric}_bound{{{WKEY}, bound="lower"}})'
    upper = f'{scale}max(cx_{bound_metric}_bound{{{WKEY}, bound="upper"}})'
    p = ts(
        title,
        [target(point, "estimate"), target(lower, "lower"), target(upper, "upper")],
        unit,
        description=description,
    )
    p["fieldConfig"]["overrides"] = [
        {
            "matcher": {"id": "byName", "options": "upper"},
            "properties": [
                {"id": "custom.fillBelowTo", "value": "lower"},
                {"id": "custom.fillOpacity", "value": 20},
                {"id": "custom.lineWidth", "value": 0},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}},
            ],
        },
        {
            "matcher": {"id": "byName", "options": "lower"},
            "properties": [
                {"id": "custom.lineWidth", "value": 0},
                {"id": "color", "value": {"mode": "fixed", "fixedColor": "blue"}},
            ],
        },
    ]
    return p


def row(title: str) -> Panel:
    return {
        "type": "row",
        "title": title,
        "collapsed": False,
        "panels": [],
        "gridPos": {"w": 24, "h": 1},
    }


def variable_query(name: str, metric: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name,
        "type": "query",
        "datasource": DS,
        "query": {"query": f"label_values({metric}, {name})", "refId": f"{name}-values"},
        "definition": f"label_values({metric}, {name})",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 1,
    }


WINDOW_VAR = {
    "name": "window",
    "label": "window",
    "type": "custom",
    "query": "1h,24h,7d,30d",
    "current": {"selected": True, "text": "24h", "value": "24h"},
    "options": [
        {"selected": w == "24h", "text": w, "value": w} for w in ("1h", "24h", "7d", "30d")
    ],
    "includeAll": False,
    "multi": False,
}


def dashboard(uid: str, title: str, description: str, panels: list[Panel], window: bool) -> Any:
    x = y = row_h = 0
    for i, p in enumerate(panels, start=1):
        w, h = p["gridPos"]["w"], p["gridPos"]["h"]
        if x + w > 24:
            x, y, row_h = 0, y + row_h, 0
        p["gridPos"] = {"x": x, "y": y, "w": w, "h": h}
        p["id"] = i
        x += w
        row_h = max(row_h, h)
    variables = [
        variable_query("channel", "cx_tickets_created_total"),
        variable_query("team", "cx_tickets_created_total"),
    ]
    if window:
        variables.append(WINDOW_VAR)
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["cxstream"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["cxstream"], "asDropdown": True, "title": "cxstream"}
        ],
        "panels": panels,
    }


def _nps(by: str, sel: str) -> str:
    return (
        f'100 * (sum by ({by}) (cx_nps_window_responses{{{sel}, category="promoter"}})'
        f' - sum by ({by}) (cx_nps_window_responses{{{sel}, category="detractor"}}))'
        f" / (sum by ({by}) (cx_nps_window_responses{{{sel}}}) > 0)"
    )


def _ratio(metric: str, good: str, by: str, sel: str) -> str:
    return f"sum by ({by}) ({metric}{{{sel}, {good}}}) / (sum by ({by}) ({metric}{{{sel}}}) > 0)"


def _p90(hist: str, by: str, rng: str) -> str:
    return f"histogram_quantile(0.9, sum by ({by}) (rate({hist}_bucket{{{KEY}}}[{rng}])))"


def executive() -> Any:
    nps_steps = [("red", None), ("orange", 0), ("green", 30)]
    ratio_steps = [("red", None), ("orange", 0.7), ("green", 0.85)]
    csat = _ratio("cx_csat_window_responses", 'score=~"4|5"', "window", WKEY)
    fcr = _ratio("cx_fcr_window_tickets", 'first_contact="true"', "window", WKEY)
    ces = (
        f"sum by (window) (cx_ces_score{{{WKEY}}} * cx_ces_window_responses{{{WKEY}}})"
        f" / (sum by (window) (cx_ces_window_responses{{{WKEY}}}) > 0)"
    )
    frt = (
        f"sum by (window) (cx_first_response_window_seconds_sum{{{WKEY}}})"
        f" / (sum by (window) (cx_first_response_window_seconds_count{{{WKEY}}}) > 0)"
    )
    panels = [
        stat(
            "NPS ($window)",
            _nps("window", WKEY),
            "none",
            "Net Promoter Score of the selected channels and teams, rebuilt from response counts.",
            steps=nps_steps,
        ),
        stat(
            "CSAT ($window)",
            csat,
            "percentunit",
            "Share of CSAT responses scoring 4 or 5.",
            steps=ratio_steps,
        ),
        stat(
            "CES ($window)",
            ces,
            "none",
            "Mean Customer Effort Score (1-7, 7 = least effort).",
            steps=[("red", None), ("orange", 4.5), ("green", 5.5)],
        ),
        stat(
            "FCR ($window)",
            fcr,
            "percentunit",
            "First-contact resolution ratio.",
            steps=[("red", None), ("orange", 0.5), ("green", 0.7)],
        ),
        stat(
            "Mean first response ($window)",
            frt,
            "s",
            "Exact mean of first agent replies placed in the window.",
        ),
        stat(
            "Alerts firing",
            "sum(cx_alerts_firing) or vector(0)",
            "none",
            "Alerts cxstream reports as firing now (all keys).",
            steps=[("green", None), ("red", 1)],
        ),
        ts("NPS by channel ($window)", [target(_nps("channel", WKEY), "{{channel}}")], "none"),
        ts(
            "CSAT by team ($window)",
            [target(_ratio("cx_csat_window_responses", 'score=~"4|5"', "team", WKEY), "{{team}}")],
            "percentunit",
        ),
        band(
            "NPS with its confidence interval ($window)",
            _nps("window", WKEY),
            "nps_score",
            "none",
            description="Point estimate and the worker's adjusted-Wald bounds (--confidence, "
            "default 95 %). Select one channel and one team for that key's interval; with "
            "several keys the band spans their lowest lower and highest upper bound.",
        ),
        band(
            "CSAT with its confidence interval ($window)",
            csat,
            "csat_ratio",
            "percentunit",
            description="Share of 4-5 scores and its Wilson interval (--confidence). Select one "
            "channel and one team for that key's interval; with several keys the band spans "
            "their lowest lower and highest upper bound.",
        ),
        ts(
            "Company-wide scores ($window, recording rules, all channels and teams)",
            [
                target('window:cx_nps_score:ratio{window="$window"}', "NPS"),
                target('100 * window:cx_csat_ratio:ratio{window="$window"}', "CSAT %"),
                target('100 * window:cx_fcr_ratio:ratio{window="$window"}', "FCR %"),
            ],
            "none",
            w=12,
        ),
        ts(
            "First response p90 by team (1 h rate of the histograms)",
            [target(_p90("cx_first_response_seconds", "le, team", "1h"), "{{team}}")],
            "s",
        ),
        panel(
            "table",
            "Channel x team ($window)",
            [
                target(f"cx_nps_score{{{WKEY}}}", fmt="table", instant=True),
                target(f"cx_csat_ratio{{{WKEY}}}", fmt="table", instant=True),
                target(f"cx_fcr_ratio{{{WKEY}}}", fmt="table", instant=True),
            ],
            24,
            9,
            description="Per key: NPS, CSAT ratio and FCR ratio from the window gauges.",
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "__name__": True,
                            "job": True,
                            "instance": True,
                            "window": True,
                        },
                        "renameByName": {"Value #A": "NPS", "Value #B": "CSAT", "Value #C": "FCR"},
                    },
                },
            ],
        ),
    ]
    return dashboard(
        "cxstream-executive",
        "cxstream / Executive CX overview",
        "NPS, CSAT, CES, FCR and first response for the selected channels and teams.",
        panels,
        window=True,
    )


def support() -> Any:
    frt_heat = f"sum by (le) (increase(cx_first_response_seconds_bucket{{{KEY}}}[$__interval]))"
    res_heat = f"sum by (le) (increase(cx_resolution_seconds_bucket{{{KEY}}}[$__interval]))"
    heat_opts = {
        "calculate": False,
        "yAxis": {"unit": "s"},
        "cellGap": 1,
        "color": {"mode": "scheme", "scheme": "Oranges"},
    }
    panels = [
        stat("Open tickets (backlog)", f"sum(cx_tickets_open{{{KEY}}})", "none"),
        stat("Created / h", f"sum(increase(cx_tickets_created_total{{{KEY}}}[1h]))", "none"),
        stat("Resolved / h", f"sum(increase(cx_tickets_resolved_total{{{KEY}}}[1h]))", "none"),
        stat("Reopened / h", f"sum(increase(cx_tickets_reopened_total{{{KEY}}}[1h]))", "none"),
        stat("First response p90 (1h)", _p90("cx_first_response_seconds", "le", "1h"), "s"),
        stat("Resolution p90 (24h)", _p90("cx_resolution_seconds", "le", "24h"), "s"),
        ts("Backlog by team", [target(f"sum by (team) (cx_tickets_open{{{KEY}}})", "{{team}}")]),
        ts(
            "Tickets created and resolved",
            [
                target(
                    f"sum(rate(cx_tickets_created_total{{{KEY}}}[$__rate_interval])) * 3600",
                    "created / h",
                ),
                target(
                    f"sum(rate(cx_tickets_resolved_total{{{KEY}}}[$__rate_interval])) * 3600",
                    "resolved / h",
                ),
            ],
        ),
        panel(
            "heatmap",
            "First response time",
            [target(frt_heat, "{{le}}", fmt="heatmap")],
            12,
            9,
            "s",
            "Distribution of first agent replies per interval (histogram buckets).",
            options=heat_opts,
        ),
        panel(
            "heatmap",
            "Resolution time",
            [target(res_heat, "{{le}}", fmt="heatmap")],
            12,
            9,
            "s",
            "Distribution of first resolutions per interval (histogram buckets).",
            options=heat_opts,
        ),
        ts(
            "First response p50 / p90 by team ($window, window summaries)",
            [
                target(
                    f'max by (team) (cx_first_response_window_seconds{{{WKEY}, quantile="0.9"}})',
                    "p90 {{team}} (slowest key)",
                ),
                target(
                    f'max by (team) (cx_first_response_window_seconds{{{WKEY}, quantile="0.5"}})',
                    "p50 {{team}} (slowest key)",
                ),
            ],
            "s",
            description="Window quantiles of different keys cannot be merged: the slowest channel of each team is shown.",
        ),
        ts(
            "Reopen rate by team (24 h)",
            [
                target(
                    f"sum by (team) (increase(cx_tickets_reopened_total{{{KEY}}}[24h])) / (sum by (team) (increase(cx_tickets_resolved_total{{{KEY}}}[24h])) > 0)",
                    "{{team}}",
                )
            ],
            "percentunit",
            description="Reopens per first resolution.",
        ),
        ts(
            "FCR by team ($window)",
            [
                target(
                    _ratio("cx_fcr_window_tickets", 'first_contact="true"', "team", WKEY),
                    "{{team}}",
                )
            ],
            "percentunit",
        ),
        panel(
            "bargauge",
            "Open tickets by priority",
            [target(f"sum by (priority) (cx_tickets_open{{{KEY}}})", "{{priority}}", instant=True)],
            12,
            8,
            options={"orientation": "horizontal", "reduceOptions": {"calcs": ["lastNotNull"]}},
        ),
        row("Business hours and SLAs (worker run with --schedules)"),
        stat(
            "SLA targets at risk",
            f'sum(cx_sla_pending{{{KEY}, state="at_risk"}}) or vector(0)',
            "none",
            "Pending targets with less than --sla-warning of their time left.",
            steps=[("green", None), ("orange", 1)],
        ),
        stat(
            "SLA targets breached, still pending",
            f'sum(cx_sla_pending{{{KEY}, state="breached"}}) or vector(0)',
            "none",
            "Open tickets past a due instant with no reply/resolution yet.",
            steps=[("green", None), ("red", 1)],
        ),
        stat(
            "Next SLA due",
            f"min(cx_sla_next_due_seconds{{{KEY}}})",
            "s",
            "Time to the earliest due instant among pending targets not yet breached.",
        ),
        stat(
            "SLA breaches (1h)",
            f"sum(increase(cx_sla_breaches_total{{{KEY}}}[1h]))",
            "none",
            "Targets newly breached in the last hour.",
        ),
        stat(
            "Business first response p90 (1h)",
            _p90("cx_first_response_business_seconds", "le", "1h"),
            "s",
            "Like 'First response p90 (1h)', counting only the keys' business hours.",
        ),
        stat(
            "Lowest first-reply achievement ($window)",
            f'min(cx_sla_achieved_ratio{{{WKEY}, target="first_reply"}})',
            "percentunit",
            "Met / (met + breached) of the key doing worst; ratios of keys do not add up.",
            steps=[("red", None), ("orange", 0.8), ("green", 0.95)],
        ),
        ts(
            "SLA pending by state",
            [target(f"sum by (target, state) (cx_sla_pending{{{KEY}}})", "{{target}} {{state}}")],
            description="Open tickets' pending targets: on_track, at_risk, breached.",
        ),
        ts(
            "SLA breaches / h by target",
            [
                target(
                    f"sum by (target) (rate(cx_sla_breaches_total{{{KEY}}}[$__rate_interval]))"
                    " * 3600",
                    "{{target}}",
                )
            ],
        ),
        ts(
            "SLA achieved by target ($window, lowest key)",
            [
                target(
                    f"min by (target) (cx_sla_achieved_ratio{{{WKEY}}})",
                    "{{target}}",
                )
            ],
            "percentunit",
            description="Per target, the key with the lowest met / (met + breached).",
        ),
        ts(
            "Next SLA due by target",
            [target(f"min by (target) (cx_sla_next_due_seconds{{{KEY}}})", "{{target}}")],
            "s",
            description="A target leaves this gauge when it is met or breached.",
        ),
        ts(
            "First response: business vs calendar time ($window)",
            [
                target(
                    f"sum(cx_first_response_window_seconds_sum{{{WKEY}}})"
                    f" / (sum(cx_first_response_window_seconds_count{{{WKEY}}}) > 0)",
                    "calendar mean",
                ),
                target(
                    f"sum(cx_first_response_business_window_seconds_sum{{{WKEY}}})"
                    f" / (sum(cx_first_response_business_window_seconds_count{{{WKEY}}}) > 0)",
                    "business mean",
                ),
                target(_p90("cx_first_response_seconds", "le", "1h"), "calendar p90 (1h)"),
                target(_p90("cx_first_response_business_seconds", "le", "1h"), "business p90 (1h)"),
            ],
            "s",
            w=24,
            description="The same first replies measured in calendar time and in the keys' "
            "business hours (a key without a schedule is 24x7: both equal).",
        ),
    ]
    return dashboard(
        "cxstream-support",
        "cxstream / Support operations",
        "Backlog, throughput, response and resolution times, reopens, FCR, SLAs and business time.",
        panels,
        window=True,
    )


def pipeline() -> Any:
    panels = [
        stat("Workers up", 'sum(up{job="cxstream"})', "none"),
        stat("Partitions owned", "sum(cx_worker_assigned_partitions)", "none"),
        stat("Events / s", "sum(rate(cx_events_total[$__rate_interval]))", "none"),
        stat("Dead letters / s", "sum(rate(cx_events_invalid_total[$__rate_interval]))", "none"),
        stat(
            "Consumer lag",
            "sum(cx_consumer_lag)",
            "none",
            "Records behind the end of the input partitions.",
        ),
        stat("Recovering workers", "sum(cx_state_recovering)", "none"),
        ts(
            "Events by outcome",
            [
                target(
                    "sum by (source, outcome) (rate(cx_events_total[$__rate_interval]))",
                    "{{source}} {{outcome}}",
                )
            ],
            "ops",
        ),
        ts(
            "Dead letters by reason",
            [
                target(
                    "sum by (source, reason) (rate(cx_events_invalid_total[$__rate_interval]))",
                    "{{source}} {{reason}}",
                )
            ],
            "ops",
        ),
        ts(
            "Late events (older than the longest window)",
            [
                target(
                    "sum by (source) (rate(cx_events_late_total[$__rate_interval]))", "{{source}}"
                )
            ],
            "ops",
        ),
        ts(
            "Consumer lag by topic and partition",
            [target("sum by (topic, partition) (cx_consumer_lag)", "{{topic}}/{{partition}}")],
        ),
        ts(
            "Alert events",
            [
                target(
                    "sum by (alertname, status) (increase(cx_alerts_total[$__rate_interval]))",
                    "{{alertname}} {{status}}",
                )
            ],
            description="Alert events cxstream published on the alerts topic.",
        ),
        ts(
            "Alerts firing",
            [
                target(
                    "sum by (alertname, severity) (cx_alerts_firing)",
                    "{{alertname}} ({{severity}})",
                )
            ],
        ),
        ts(
            "Alertmanager forwarding",
            [
                target(
                    "sum by (instance) (rate(cx_alertmanager_post_failures_total[$__rate_interval]))",
                    "failed posts/s {{instance}}",
                ),
                target("sum by (instance) (cx_alertmanager_active_alerts)", "active {{instance}}"),
            ],
        ),
        ts(
            "Stage batches and table writes",
            [
                target(
                    "sum by (stage) (rate(cx_stage_batches_total[$__rate_interval]))",
                    "batches {{stage}}",
                ),
                target(
                    "sum by (table) (rate(cx_table_writes_total[$__rate_interval]))",
                    "writes {{table}}",
                ),
            ],
            "ops",
        ),
        ts(
            "Worker CPU",
            [
                target(
                    'rate(process_cpu_seconds_total{job="cxstream"}[$__rate_interval])',
                    "{{instance}}",
                )
            ],
            "percentunit",
        ),
        ts(
            "Worker memory",
            [target('process_resident_memory_bytes{job="cxstream"}', "{{instance}}")],
            "bytes",
        ),
        panel(
            "table",
            "Versions",
            [target("cx_build_info", fmt="table", instant=True)],
            24,
            5,
            transformations=[
                {
                    "id": "organize",
                    "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}},
                }
            ],
        ),
    ]
    return dashboard(
        "cxstream-pipeline",
        "cxstream / Pipeline health",
        "Input outcomes, dead letters, lateness, lag, alerts and the workers themselves.",
        panels,
        window=False,
    )


DASHBOARDS = {
    "executive-cx-overview.json": executive,
    "support-operations.json": support,
    "pipeline-health.json": pipeline,
}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


def main(argv: list[str]) -> int:
    rendered = render()
    if "--check" in argv:
        stale = [
            n
            for n, text in rendered.items()
            if not (OUT / n).is_file() or (OUT / n).read_text() != text
        ]
        if stale:
            print(
                f"stale: {', '.join(stale)}; run python deploy/grafana/generate.py", file=sys.stderr
            )
            return 1
        return 0
    OUT.mkdir(exist_ok=True)
    for name, text in rendered.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
