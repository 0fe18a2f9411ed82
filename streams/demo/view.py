"""The demo's output: a live rich view refreshed in place, or plain lines."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from streams.demo.readings import COLUMNS, Reading, summarise
from streams.demo.sender import Progress
from streams.traffic import Incident


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric == "nps":
        return f"{value:+.1f}"
    if metric in ("csat", "fcr"):
        return f"{100 * value:.1f}%"
    if metric == "ces":
        return f"{value:.2f}"
    if value < 60:
        return f"{value:.0f}s"
    if value < 3600:
        return f"{value // 60:.0f}m{value % 60:02.0f}s"
    return f"{value // 3600:.0f}h{(value % 3600) // 60:02.0f}m"


def _level(metric: str, value: float | None) -> str:
    if value is None:
        return "dim"
    bad = {
        "nps": value < 0,
        "csat": value < 0.7,
        "ces": value < 4,
        "fcr": value < 0.5,
        "frt_p90": value > 14_400,
        "frt_business_p90": value > 14_400,
    }[metric]
    good = {
        "nps": value >= 30,
        "csat": value >= 0.8,
        "ces": value >= 5,
        "fcr": value >= 0.7,
        "frt_p90": value <= 3600,
        "frt_business_p90": value <= 3600,
    }[metric]
    return "bold red" if bad else "green" if good else "yellow"


def incident_status(incidents: Sequence[Incident], now_s: float) -> list[str]:
    out = []
    for i in incidents:
        if now_s < i.start_s:
            out.append(f"incident {i.label}: starts in {i.start_s - now_s:.0f}s")
        elif now_s < i.end_s:
            out.append(f"incident {i.label}: ACTIVE, ends in {i.end_s - now_s:.0f}s")
        elif now_s < i.end_s + i.recovery * (i.end_s - i.start_s):
            out.append(f"incident {i.label}: over, the desk is recovering")
        else:
            out.append(f"incident {i.label}: over")
    return out


@dataclass
class Frame:
    """Everything one refresh shows."""

    reading: Reading
    progress: Progress
    urls: dict[str, str]
    incidents: Sequence[Incident]
    started: float

    def progress_line(self) -> str:
        p, r = self.progress, self.reading
        ev = r.events
        history = f"history {p.history_sent}/{p.history_total}"
        return (
            f"sent {p.sent} ({history}, live {p.live_sent}) | processed {r.processed:.0f} "
            f"(accepted {ev.get('accepted', 0):.0f}, duplicate {ev.get('duplicate', 0):.0f}, "
            f"invalid {ev.get('invalid', 0):.0f}) | workers up {r.workers_up} | {p.phase}"
        )

    def alert_rows(self) -> list[dict[str, Any]]:
        """Desk alerts one by one; detractor follow-ups (one per response) as one row."""
        rows = summarise([a for a in self.reading.alerts if a["severity"] != "info"])
        info = [a for a in self.reading.alerts if a["severity"] == "info"]
        for row in summarise([{**a, "desk": ""} for a in info]):
            rows.append({**row, "desk": f"{len({a['desk'] for a in info})} desks"})
        return rows

    def plain(self) -> str:
        """One block of text: the progress line, the per-channel table, the alerts."""
        r = self.reading
        elapsed = time.time() - self.started
        lines = [f"demo: t={elapsed:.0f}s {self.progress_line()}"]
        head = f"  {'channel':<10}" + "".join(f"{t:>18}" for t, _, _ in COLUMNS)
        lines.append(head)
        for channel, cols in r.rows.items():
            cells = "".join(f"{fmt(metric, cols[title][0]):>18}" for title, metric, _ in COLUMNS)
            lines.append(f"  {channel:<10}{cells}")
        lines.append(f"  alerts in Alertmanager: {len(r.alerts)}")
        for a in self.alert_rows():
            lines.append(
                f"    {a['alertname']:<22}{a['severity']:<10}{a['desk'] or '-':<22}"
                f"x{a['count']:<5}from {'+'.join(a['sources'])}"
            )
        lines.extend(f"  {s}" for s in incident_status(self.incidents, time.time()))
        return "\n".join(lines)

    def rich(self, width: int = 120) -> Any:
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        r, p = self.reading, self.progress
        links = Table.grid(padding=(0, 2))
        links.add_column(style="bold cyan")
        links.add_column()
        for name, url in self.urls.items():
            links.add_row(name, url)
        elapsed = time.time() - self.started
        title = f"cxstream demo · {dt.timedelta(seconds=int(elapsed))} · Ctrl-C stops everything"
        header = Panel(links, title=title, border_style="cyan")

        wide = width >= 120  # room for the sample sizes
        table = Table(title="Rolling windows per channel", expand=True, title_style="bold")
        table.add_column("channel", style="bold")
        for title_, _, _ in COLUMNS:
            table.add_column(title_, justify="right")
        for channel, cols in r.rows.items():
            cells = []
            for title_, metric, _ in COLUMNS:
                value, n = cols[title_]
                cell = Text(fmt(metric, value), style=_level(metric, value))
                if wide and value is not None:
                    cell.append(f"  n={n:.0f}", style="dim")
                cells.append(cell)
            table.add_row(channel, *cells, end_section=channel == "all")

        alerts = Table(
            title=f"Alerts in Alertmanager ({len(r.alerts)})", expand=True, title_style="bold"
        )
        for col in ("alert", "severity", "desk", "count", "from", "since (UTC)"):
            alerts.add_column(col)
        colour = {"critical": "bold red", "warning": "yellow", "info": "cyan"}
        rows = self.alert_rows()
        for a in rows[:12]:
            alerts.add_row(
                a["alertname"],
                Text(a["severity"], style=colour.get(a["severity"], "")),
                a["desk"],
                str(a["count"]),
                "+".join(a["sources"]),
                a["since"][11:19],
            )
        if len(rows) > 12:
            alerts.add_row(f"... {len(rows) - 12} more", "", "", "", "", "")
        if not r.alertmanager_ok:
            alerts.add_row(Text("Alertmanager unreachable", style="red"), "", "", "", "", "")

        done = r.processed
        total = max(p.sent, 1)
        bar = Table.grid(padding=(0, 1))
        bar.add_column(width=min(50, max(10, width - 45)))
        bar.add_column()
        bar.add_row(
            ProgressBar(total=total, completed=min(done, total)),
            Text(f"{100 * min(done, total) / total:.1f}% of the sent events processed"),
        )
        status = Group(
            Text(self.progress_line()),
            bar,
            *(Text(s, style="bold magenta") for s in incident_status(self.incidents, time.time())),
        )
        return Group(header, table, alerts, Panel(status, title="events", border_style="blue"))
