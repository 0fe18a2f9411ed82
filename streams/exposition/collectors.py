"""The custom collector that publishes table state at scrape time.

Each scrape asks the pipeline for a snapshot of the dims keys this worker owns
as *active* (never standbys), so every series for one ``(channel, team)``
comes from exactly one worker, and counters survive restarts and rebalances
because they live in the changelog-backed table, not in process memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from streams.domain.model import (
    DURATION_BUCKETS_S,
    US_PER_S,
    CountersSnapshot,
    DurationSummary,
    HistogramSnapshot,
    WindowSnapshot,
)

NPS_CATEGORIES = ("promoter", "passive", "detractor")


@dataclass(frozen=True, slots=True)
class KeyView:
    """What one dims key publishes at one scrape."""

    labels: tuple[str, ...]  # values, in the order of CxCollector.dimensions
    windows: Sequence[WindowSnapshot]
    counters: CountersSnapshot
    firing: dict[tuple[str, str], int]  # (alertname, severity) -> alerts firing


def _fmt(value: float) -> str:
    return "+Inf" if value == float("inf") else f"{value:g}"


def _histogram(family: HistogramMetricFamily, labels: list[str], hist: HistogramSnapshot) -> None:
    cumulative = 0
    buckets: list[tuple[str, float]] = []
    for bound, count in zip([*DURATION_BUCKETS_S, float("inf")], hist.buckets, strict=True):
        cumulative += count
        buckets.append((_fmt(bound), cumulative))
    family.add_metric(labels, buckets, hist.sum_us / US_PER_S)


def _summary(
    family: SummaryMetricFamily,
    labelnames: Sequence[str],
    labels: list[str],
    summary: DurationSummary,
) -> None:
    # SummaryMetricFamily.add_metric knows only _count and _sum; the window's
    # quantiles are appended as ordinary samples with a "quantile" label.
    base = dict(zip(labelnames, labels, strict=True))
    for q, value in sorted(summary.quantiles.items()):
        family.samples.append(Sample(family.name, {**base, "quantile": _fmt(q)}, value))
    family.add_metric(labels, count_value=summary.count, sum_value=summary.sum_us / US_PER_S)


#: Bounds of a window's score metric (``confidence.WindowBounds``): metric
#: name (``nps_score``, ``csat_ratio``, ``ces_score``) -> (lower, upper) or None.
BoundsOf = Callable[[str, WindowSnapshot], tuple[float, float] | None]

#: The confidence-bound families (contract 8.1): metric -> (name, help).
BOUND_FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("nps_score", "cx_nps_score_bound", "Confidence bounds of the rolling NPS (adjusted Wald)."),
    ("csat_ratio", "cx_csat_ratio_bound", "Confidence bounds of the rolling CSAT ratio (Wilson)."),
    ("ces_score", "cx_ces_score_bound", "Confidence bounds of the rolling CES score (t interval)."),
)


class CxCollector(Collector):
    """Yields every contract metric family derived from table state."""

    def __init__(
        self,
        dimensions: Sequence[str],
        snapshot: Callable[[], Iterable[KeyView]],
        bounds: BoundsOf | None = None,
    ) -> None:
        self.dimensions = list(dimensions)
        self._snapshot = snapshot
        self._bounds = bounds

    def describe(self) -> Iterable[Metric]:
        # Families are dynamic; describing nothing keeps registration cheap.
        return []

    def collect(self) -> Iterator[Metric]:
        d = self.dimensions
        fam_nps = CounterMetricFamily(
            "cx_nps_responses", "NPS survey responses by category.", labels=[*d, "category"]
        )
        fam_csat = CounterMetricFamily(
            "cx_csat_responses", "CSAT survey responses by score (1-5).", labels=[*d, "score"]
        )
        fam_ces = CounterMetricFamily(
            "cx_ces_responses",
            "CES survey responses by score (1-7, 7 = least effort).",
            labels=[*d, "score"],
        )
        fam_created = CounterMetricFamily(
            "cx_tickets_created", "Tickets created (first contacts).", labels=[*d, "priority"]
        )
        fam_resolved = CounterMetricFamily(
            "cx_tickets_resolved",
            "Tickets at their first resolution, by first-contact status at that moment.",
            labels=[*d, "priority", "first_contact"],
        )
        fam_reopened = CounterMetricFamily(
            "cx_tickets_reopened", "Reopens of resolved tickets.", labels=[*d, "priority"]
        )
        fam_frt = HistogramMetricFamily(
            "cx_first_response_seconds",
            "Time from ticket creation to the first agent reply.",
            labels=[*d, "priority"],
        )
        fam_res = HistogramMetricFamily(
            "cx_resolution_seconds",
            "Time from ticket creation to its first resolution.",
            labels=[*d, "priority"],
        )
        fam_open = GaugeMetricFamily(
            "cx_tickets_open", "Tickets open now.", labels=[*d, "priority"]
        )
        w = ["window", *d]
        fam_nps_score = GaugeMetricFamily("cx_nps_score", "Rolling NPS (-100..100).", labels=w)
        fam_nps_win = GaugeMetricFamily(
            "cx_nps_window_responses",
            "NPS responses in the window by category.",
            labels=[*w, "category"],
        )
        fam_csat_ratio = GaugeMetricFamily(
            "cx_csat_ratio", "Rolling CSAT ratio: responses scoring 4-5 / all (0..1).", labels=w
        )
        fam_csat_win = GaugeMetricFamily(
            "cx_csat_window_responses",
            "CSAT responses in the window by score.",
            labels=[*w, "score"],
        )
        fam_ces_score = GaugeMetricFamily(
            "cx_ces_score", "Rolling mean CES score (1..7).", labels=w
        )
        fam_ces_win = GaugeMetricFamily(
            "cx_ces_window_responses", "CES responses in the window.", labels=w
        )
        fam_fcr_ratio = GaugeMetricFamily(
            "cx_fcr_ratio", "Rolling first-contact-resolution ratio (0..1).", labels=w
        )
        fam_fcr_win = GaugeMetricFamily(
            "cx_fcr_window_tickets",
            "First-resolved tickets in the window by first-contact status.",
            labels=[*w, "first_contact"],
        )
        fam_frt_win = SummaryMetricFamily(
            "cx_first_response_window_seconds",
            "First response times placed in the window (quantiles within 2% relative error).",
            labels=w,
        )
        fam_res_win = SummaryMetricFamily(
            "cx_resolution_window_seconds",
            "Resolution times placed in the window (quantiles within 2% relative error).",
            labels=w,
        )
        fam_firing = GaugeMetricFamily(
            "cx_alerts_firing", "Alerts firing now.", labels=["alertname", "severity"]
        )
        fam_bounds = [
            (metric, GaugeMetricFamily(name, help_text, labels=[*w, "bound"]))
            for metric, name, help_text in BOUND_FAMILIES
        ]
        bounds_of = self._bounds
        firing_total: dict[tuple[str, str], int] = {}

        for view in self._snapshot():
            lv = list(view.labels)
            c = view.counters
            for category in NPS_CATEGORIES:
                fam_nps.add_metric([*lv, category], c.nps.get(category, 0))
            for score, n in sorted(c.csat.items()):
                fam_csat.add_metric([*lv, str(score)], n)
            for score, n in sorted(c.ces.items()):
                fam_ces.add_metric([*lv, str(score)], n)
            for priority, n in sorted(c.created.items()):
                fam_created.add_metric([*lv, priority], n)
            for (priority, first_contact), n in sorted(c.resolved.items()):
                fam_resolved.add_metric([*lv, priority, str(first_contact).lower()], n)
            for priority, n in sorted(c.reopened.items()):
                fam_reopened.add_metric([*lv, priority], n)
            for priority, n in sorted(c.open.items()):
                fam_open.add_metric([*lv, priority], n)
            for priority, hist in sorted(c.first_response.items()):
                _histogram(fam_frt, [*lv, priority], hist)
            for priority, hist in sorted(c.resolution.items()):
                _histogram(fam_res, [*lv, priority], hist)
            for snap in view.windows:
                wl = [snap.window, *lv]
                for category in NPS_CATEGORIES:
                    fam_nps_win.add_metric([*wl, category], snap.nps[category])
                for score in range(1, 6):
                    fam_csat_win.add_metric([*wl, str(score)], snap.csat[score])
                fam_ces_win.add_metric(wl, snap.ces_count)
                fam_fcr_win.add_metric([*wl, "true"], snap.fcr[True])
                fam_fcr_win.add_metric([*wl, "false"], snap.fcr[False])
                # Ratio and score gauges are absent while their window is empty.
                if (nps := snap.nps_score) is not None:
                    fam_nps_score.add_metric(wl, nps)
                if (csat := snap.csat_ratio) is not None:
                    fam_csat_ratio.add_metric(wl, csat)
                if (ces := snap.ces_score) is not None:
                    fam_ces_score.add_metric(wl, ces)
                if (fcr := snap.fcr_ratio) is not None:
                    fam_fcr_ratio.add_metric(wl, fcr)
                if bounds_of is not None:
                    for metric, fam in fam_bounds:
                        # Absent while the window is empty (and CES below 2).
                        if (found := bounds_of(metric, snap)) is not None:
                            fam.add_metric([*wl, "lower"], found[0])
                            fam.add_metric([*wl, "upper"], found[1])
                _summary(fam_frt_win, w, wl, snap.first_response)
                _summary(fam_res_win, w, wl, snap.resolution)
            for key, n in view.firing.items():
                firing_total[key] = firing_total.get(key, 0) + n

        for (alertname, severity), n in sorted(firing_total.items()):
            fam_firing.add_metric([alertname, severity], n)
        yield from (
            fam_nps,
            fam_csat,
            fam_ces,
            fam_created,
            fam_resolved,
            fam_reopened,
            fam_frt,
            fam_res,
            fam_open,
            fam_nps_score,
            fam_nps_win,
            fam_csat_ratio,
            fam_csat_win,
            fam_ces_score,
            fam_ces_win,
            fam_fcr_ratio,
            fam_fcr_win,
            fam_frt_win,
            fam_res_win,
            fam_firing,
        )
        if bounds_of is not None:
            yield from (fam for _, fam in fam_bounds)
