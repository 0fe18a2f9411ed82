"""The custom collector that publishes table state at scrape time.

Each scrape asks the pipeline for a snapshot of the dims keys this worker owns
as *active* (never standbys), so every series for one ``(channel, team)``
comes from exactly one worker, and counters survive restarts and rebalances
because they live in the changelog-backed table, not in process memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
    SLA_PENDING_STATES,
    SLA_TARGETS,
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
    now_us: int = 0  # the scrape's time (cx_sla_next_due_seconds counts from it)


def _fmt(value: float) -> str:
    return "+Inf" if value == float("inf") else f"{value:g}"


class _Discard:
    """A family a selective scrape leaves out: takes samples, keeps none
    (``_histogram`` and ``_summary`` return before touching it)."""

    def add_metric(self, *args: object, **kwargs: object) -> None:
        pass


DISCARD: Any = _Discard()  # typed Any: it stands in for any family

#: The sample names a family of each kind writes (no ``_created``: disabled).
_SAMPLE_SUFFIXES: dict[type[Metric], tuple[str, ...]] = {
    CounterMetricFamily: ("_total",),
    GaugeMetricFamily: ("",),
    HistogramMetricFamily: ("_bucket", "_count", "_sum"),
    SummaryMetricFamily: ("", "_count", "_sum"),
}


class _Families:
    """Makes the families of one collection; with ``names`` (a scrape's
    ``name[]`` selection), a family none of whose samples is named there
    is ``DISCARD``, so it costs nothing to fill."""

    def __init__(self, names: frozenset[str] | None) -> None:
        self.names = names

    def __call__(self, kind: type[Any], name: str, documentation: str, labels: list[str]) -> Any:
        if self.names is not None and not any(
            name + suffix in self.names for suffix in _SAMPLE_SUFFIXES[kind]
        ):
            return DISCARD
        return kind(name, documentation, labels=labels)


def _histogram(family: HistogramMetricFamily, labels: list[str], hist: HistogramSnapshot) -> None:
    if family is DISCARD:
        return
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
    if family is DISCARD:
        return
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


class _BusinessAndSla:
    """The families of contract 8.2 (``business``: a schedules file is
    configured) and 8.3 (``sla``: it has SLA policies); published only when
    they apply, so a worker without a schedules file shows none of them."""

    def __init__(self, d: Sequence[str], business: bool, sla: bool, new: _Families) -> None:
        self.business, self.sla = business, sla
        w = ["window", *d]
        self.w = w
        self.frt = new(
            HistogramMetricFamily,
            "cx_first_response_business_seconds",
            "Business time (the key's schedule) from ticket creation to the first agent reply.",
            labels=[*d, "priority"],
        )
        self.res = new(
            HistogramMetricFamily,
            "cx_resolution_business_seconds",
            "Business time (the key's schedule) from ticket creation to its first resolution.",
            labels=[*d, "priority"],
        )
        self.frt_win = new(
            SummaryMetricFamily,
            "cx_first_response_business_window_seconds",
            "Business first response times placed in the window (quantiles within 2%).",
            labels=w,
        )
        self.res_win = new(
            SummaryMetricFamily,
            "cx_resolution_business_window_seconds",
            "Business resolution times placed in the window (quantiles within 2%).",
            labels=w,
        )
        self.breaches = new(
            CounterMetricFamily,
            "cx_sla_breaches",
            "SLA targets breached, once per ticket and target, when first known.",
            labels=[*d, "priority", "target"],
        )
        self.pending = new(
            GaugeMetricFamily,
            "cx_sla_pending",
            "Open tickets whose SLA target is still pending, by state.",
            labels=[*d, "priority", "target", "state"],
        )
        self.next_due = new(
            GaugeMetricFamily,
            "cx_sla_next_due_seconds",
            "Seconds to the earliest due instant among pending, not yet breached targets.",
            labels=[*d, "target"],
        )
        self.achieved = new(
            GaugeMetricFamily,
            "cx_sla_achieved_ratio",
            "SLA targets met / decided in the window, placed when decided (0..1).",
            labels=[*w, "target"],
        )

    def add(self, view: KeyView, lv: list[str]) -> None:
        c = view.counters
        if self.business:
            for priority, hist in sorted(c.first_response_business.items()):
                _histogram(self.frt, [*lv, priority], hist)
            for priority, hist in sorted(c.resolution_business.items()):
                _histogram(self.res, [*lv, priority], hist)
            for snap in view.windows:
                wl = [snap.window, *lv]
                if snap.first_response_business is not None:
                    _summary(self.frt_win, self.w, wl, snap.first_response_business)
                if snap.resolution_business is not None:
                    _summary(self.res_win, self.w, wl, snap.resolution_business)
        if not self.sla:
            return
        for (priority, target), n in sorted(c.sla_breaches.items()):
            self.breaches.add_metric([*lv, priority, target], n)
        priorities = sorted({p for p, _, _ in c.sla_pending})
        for priority in priorities:
            for target in SLA_TARGETS:
                if not any((priority, target, st) in c.sla_pending for st in SLA_PENDING_STATES):
                    continue  # no ticket of this priority has had this target
                for st in SLA_PENDING_STATES:
                    n = c.sla_pending.get((priority, target, st), 0)
                    self.pending.add_metric([*lv, priority, target, st], n)
        for target, due_us in sorted(c.sla_next_due_us.items()):
            self.next_due.add_metric([*lv, target], max(0, due_us - view.now_us) / US_PER_S)
        for snap in view.windows:
            for target in SLA_TARGETS:
                ratio = snap.sla_achieved_ratio(target)
                if ratio is not None:
                    self.achieved.add_metric([snap.window, *lv, target], ratio)

    def families(self) -> list[Metric]:
        out: list[Any] = []
        if self.business:
            out += [self.frt, self.res, self.frt_win, self.res_win]
        if self.sla:
            out += [self.breaches, self.pending, self.next_due, self.achieved]
        return [fam for fam in out if fam is not DISCARD]


class CxCollector(Collector):
    """Yields every contract metric family derived from table state."""

    def __init__(
        self,
        dimensions: Sequence[str],
        snapshot: Callable[[], Iterable[KeyView]],
        bounds: BoundsOf | None = None,
        *,
        business: bool = False,
        sla: bool = False,
    ) -> None:
        self.dimensions = list(dimensions)
        self._snapshot = snapshot
        self._bounds = bounds
        self._business, self._sla = business, sla
        self._names: frozenset[str] | None = None

    def describe(self) -> Iterable[Metric]:
        # Families are dynamic; describing nothing keeps registration cheap.
        return []

    @contextmanager
    def selecting(self, names: frozenset[str] | None) -> Iterator[None]:
        """Collect only the families with samples named in ``names`` (all
        when None) while in this block: a scrape with ``?name[]=`` then
        skips the work of every other family."""
        self._names = names
        try:
            yield
        finally:
            self._names = None

    def collect(self) -> Iterator[Metric]:
        d = self.dimensions
        new = _Families(self._names)
        fam_nps = new(
            CounterMetricFamily,
            "cx_nps_responses",
            "NPS survey responses by category.",
            labels=[*d, "category"],
        )
        fam_csat = new(
            CounterMetricFamily,
            "cx_csat_responses",
            "CSAT survey responses by score (1-5).",
            labels=[*d, "score"],
        )
        fam_ces = new(
            CounterMetricFamily,
            "cx_ces_responses",
            "CES survey responses by score (1-7, 7 = least effort).",
            labels=[*d, "score"],
        )
        fam_created = new(
            CounterMetricFamily,
            "cx_tickets_created",
            "Tickets created (first contacts).",
            labels=[*d, "priority"],
        )
        fam_resolved = new(
            CounterMetricFamily,
            "cx_tickets_resolved",
            "Tickets at their first resolution, by first-contact status at that moment.",
            labels=[*d, "priority", "first_contact"],
        )
        fam_reopened = new(
            CounterMetricFamily,
            "cx_tickets_reopened",
            "Reopens of resolved tickets.",
            labels=[*d, "priority"],
        )
        fam_frt = new(
            HistogramMetricFamily,
            "cx_first_response_seconds",
            "Time from ticket creation to the first agent reply.",
            labels=[*d, "priority"],
        )
        fam_res = new(
            HistogramMetricFamily,
            "cx_resolution_seconds",
            "Time from ticket creation to its first resolution.",
            labels=[*d, "priority"],
        )
        fam_open = new(
            GaugeMetricFamily, "cx_tickets_open", "Tickets open now.", labels=[*d, "priority"]
        )
        w = ["window", *d]
        fam_nps_score = new(GaugeMetricFamily, "cx_nps_score", "Rolling NPS (-100..100).", labels=w)
        fam_nps_win = new(
            GaugeMetricFamily,
            "cx_nps_window_responses",
            "NPS responses in the window by category.",
            labels=[*w, "category"],
        )
        fam_csat_ratio = new(
            GaugeMetricFamily,
            "cx_csat_ratio",
            "Rolling CSAT ratio: responses scoring 4-5 / all (0..1).",
            labels=w,
        )
        fam_csat_win = new(
            GaugeMetricFamily,
            "cx_csat_window_responses",
            "CSAT responses in the window by score.",
            labels=[*w, "score"],
        )
        fam_ces_score = new(
            GaugeMetricFamily, "cx_ces_score", "Rolling mean CES score (1..7).", labels=w
        )
        fam_ces_win = new(
            GaugeMetricFamily, "cx_ces_window_responses", "CES responses in the window.", labels=w
        )
        fam_fcr_ratio = new(
            GaugeMetricFamily,
            "cx_fcr_ratio",
            "Rolling first-contact-resolution ratio (0..1).",
            labels=w,
        )
        fam_fcr_win = new(
            GaugeMetricFamily,
            "cx_fcr_window_tickets",
            "First-resolved tickets in the window by first-contact status.",
            labels=[*w, "first_contact"],
        )
        fam_frt_win = new(
            SummaryMetricFamily,
            "cx_first_response_window_seconds",
            "First response times placed in the window (quantiles within 2% relative error).",
            labels=w,
        )
        fam_res_win = new(
            SummaryMetricFamily,
            "cx_resolution_window_seconds",
            "Resolution times placed in the window (quantiles within 2% relative error).",
            labels=w,
        )
        fam_firing = new(
            GaugeMetricFamily,
            "cx_alerts_firing",
            "Alerts firing now.",
            labels=["alertname", "severity"],
        )
        fam_bounds = [
            (metric, fam)
            for metric, name, help_text in BOUND_FAMILIES
            # Bounds cost the most to compute: none for a family left out.
            if (fam := new(GaugeMetricFamily, name, help_text, labels=[*w, "bound"])) is not DISCARD
        ]
        bounds_of = self._bounds
        firing_total: dict[tuple[str, str], int] = {}
        extensions = _BusinessAndSla(d, self._business, self._sla, new)

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
            extensions.add(view, lv)

        for (alertname, severity), n in sorted(firing_total.items()):
            fam_firing.add_metric([alertname, severity], n)
        families = (
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
        yield from (fam for fam in families if fam is not DISCARD)
        if bounds_of is not None:
            yield from (fam for _, fam in fam_bounds)
        yield from extensions.families()
