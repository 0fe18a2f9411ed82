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
from functools import cache
from itertools import accumulate
from typing import Any, cast

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
from streams.exposition.text import (
    CounterLines,
    GaugeLines,
    HistogramLines,
    Lines,
    Rendered,
    SummaryLines,
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
    #: the state's version (``DimsState.version``): the key's rendered lines
    #: are reused while it and ``windows`` stay the same; None: never reused
    version: int | None = None


@cache  # bucket bounds and quantiles: a few constants, formatted once
def _fmt(value: float) -> str:
    return "+Inf" if value == float("inf") else f"{value:g}"


class _Discard:
    """A family a selective scrape leaves out: takes samples, keeps none
    (``_histogram`` and ``_summary`` return before touching it)."""

    def add_metric(self, *args: object, **kwargs: object) -> None:
        pass


DISCARD: Any = _Discard()  # typed Any: it stands in for any family


class _Summary(SummaryMetricFamily):
    """A summary with quantile samples: SummaryMetricFamily.add_metric
    writes only _count and _sum."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        super().__init__(name, documentation, labels=labels)
        self.labelnames = tuple(labels)

    def add_quantile(self, labels: Sequence[str], quantile: str, value: float) -> None:
        base = dict(zip(self.labelnames, labels, strict=True))
        self.samples.append(Sample(self.name, {**base, "quantile": quantile}, value))


#: The kinds of family a collection makes, and what writes the lines of each
#: kind straight to text (its ``suffixes``: the sample names a family of the
#: kind writes; no ``_created``, disabled).
_LINES: dict[type[Metric], type[Lines]] = {
    CounterMetricFamily: CounterLines,
    GaugeMetricFamily: GaugeLines,
    HistogramMetricFamily: HistogramLines,
    _Summary: SummaryLines,
}


#: Which families a collection makes: (name, the suffixes of its samples) -> bool.
Keep = Callable[[str, tuple[str, ...]], bool]
#: Families whose samples change with every scrape, not only with the state:
#: alerts firing (summed over keys) and the SLA countdown.
_LIVE = frozenset({"cx_alerts_firing", "cx_sla_next_due_seconds"})


def _any(name: str, suffixes: tuple[str, ...]) -> bool:
    return True


def _live(name: str, suffixes: tuple[str, ...]) -> bool:
    return name in _LIVE


def _not_live(name: str, suffixes: tuple[str, ...]) -> bool:
    return name not in _LIVE


class _Families:
    """Makes the families of one collection: those ``keep`` refuses are
    ``DISCARD``, so they cost nothing to fill. With ``lines``, the families
    write their samples' text lines (``take``) and keep no samples."""

    def __init__(self, keep: Keep, *, lines: bool = False) -> None:
        self.keep = keep
        self.lines = lines

    def __call__(self, kind: type[Any], name: str, documentation: str, labels: list[str]) -> Any:
        lines = _LINES[kind]
        if not self.keep(name, lines.suffixes):
            return DISCARD
        if self.lines:
            return lines(name, labels)
        return kind(name, documentation, labels=labels)


#: The histograms' "le" label values, +Inf last.
_LE = tuple(_fmt(bound) for bound in (*DURATION_BUCKETS_S, float("inf")))


def _histogram(
    family: HistogramMetricFamily, labels: tuple[str, ...], hist: HistogramSnapshot
) -> None:
    if family is DISCARD:
        return
    buckets = list(zip(_LE, accumulate(hist.buckets), strict=True))
    family.add_metric(labels, buckets, hist.sum_us / US_PER_S)


def _summary(family: _Summary, labels: tuple[str, ...], summary: DurationSummary) -> None:
    if family is DISCARD:
        return
    for q, value in sorted(summary.quantiles.items()):
        family.add_quantile(labels, _fmt(q), value)
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
            _Summary,
            "cx_first_response_business_window_seconds",
            "Business first response times placed in the window (quantiles within 2%).",
            labels=w,
        )
        self.res_win = new(
            _Summary,
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
        # Business families all left out of this collection: nothing to walk.
        self.business = business and any(
            f is not DISCARD for f in (self.frt, self.res, self.frt_win, self.res_win)
        )

    def add(self, view: KeyView, lv: tuple[str, ...]) -> None:
        c = view.counters
        if self.business:
            for priority, hist in sorted(c.first_response_business.items()):
                _histogram(self.frt, (*lv, priority), hist)
            for priority, hist in sorted(c.resolution_business.items()):
                _histogram(self.res, (*lv, priority), hist)
            for snap in view.windows:
                wl = (snap.window, *lv)
                if snap.first_response_business is not None:
                    _summary(self.frt_win, wl, snap.first_response_business)
                if snap.resolution_business is not None:
                    _summary(self.res_win, wl, snap.resolution_business)
        if not self.sla:
            return
        for (priority, target), n in sorted(c.sla_breaches.items()):
            self.breaches.add_metric((*lv, priority, target), n)
        priorities = sorted({p for p, _, _ in c.sla_pending})
        for priority in priorities:
            for target in SLA_TARGETS:
                if not any((priority, target, st) in c.sla_pending for st in SLA_PENDING_STATES):
                    continue  # no ticket of this priority has had this target
                for st in SLA_PENDING_STATES:
                    n = c.sla_pending.get((priority, target, st), 0)
                    self.pending.add_metric((*lv, priority, target, st), n)
        for target, due_us in sorted(c.sla_next_due_us.items()):
            self.next_due.add_metric((*lv, target), max(0, due_us - view.now_us) / US_PER_S)
        if self.achieved is DISCARD:
            return
        for snap in view.windows:
            for target in SLA_TARGETS:
                ratio = snap.sla_achieved_ratio(target)
                if ratio is not None:
                    self.achieved.add_metric((snap.window, *lv, target), ratio)

    def families(self) -> list[Metric]:
        out: list[Any] = []
        if self.business:
            out += [self.frt, self.res, self.frt_win, self.res_win]
        if self.sla:
            out += [self.breaches, self.pending, self.next_due, self.achieved]
        return [fam for fam in out if fam is not DISCARD]


class _Collection:
    """The contract families of one collection, or of one key's part of one
    (``new`` decides which are made and which are ``DISCARD``)."""

    def __init__(
        self,
        d: Sequence[str],
        new: _Families,
        bounds_of: BoundsOf | None,
        business: bool,
        sla: bool,
    ) -> None:
        self.bounds_of = bounds_of
        self.nps = new(
            CounterMetricFamily,
            "cx_nps_responses",
            "NPS survey responses by category.",
            labels=[*d, "category"],
        )
        self.csat = new(
            CounterMetricFamily,
            "cx_csat_responses",
            "CSAT survey responses by score (1-5).",
            labels=[*d, "score"],
        )
        self.ces = new(
            CounterMetricFamily,
            "cx_ces_responses",
            "CES survey responses by score (1-7, 7 = least effort).",
            labels=[*d, "score"],
        )
        self.created = new(
            CounterMetricFamily,
            "cx_tickets_created",
            "Tickets created (first contacts).",
            labels=[*d, "priority"],
        )
        self.resolved = new(
            CounterMetricFamily,
            "cx_tickets_resolved",
            "Tickets at their first resolution, by first-contact status at that moment.",
            labels=[*d, "priority", "first_contact"],
        )
        self.reopened = new(
            CounterMetricFamily,
            "cx_tickets_reopened",
            "Reopens of resolved tickets.",
            labels=[*d, "priority"],
        )
        self.frt = new(
            HistogramMetricFamily,
            "cx_first_response_seconds",
            "Time from ticket creation to the first agent reply.",
            labels=[*d, "priority"],
        )
        self.res = new(
            HistogramMetricFamily,
            "cx_resolution_seconds",
            "Time from ticket creation to its first resolution.",
            labels=[*d, "priority"],
        )
        self.open = new(
            GaugeMetricFamily, "cx_tickets_open", "Tickets open now.", labels=[*d, "priority"]
        )
        w = ["window", *d]
        self.nps_score = new(
            GaugeMetricFamily, "cx_nps_score", "Rolling NPS (-100..100).", labels=w
        )
        self.nps_win = new(
            GaugeMetricFamily,
            "cx_nps_window_responses",
            "NPS responses in the window by category.",
            labels=[*w, "category"],
        )
        self.csat_ratio = new(
            GaugeMetricFamily,
            "cx_csat_ratio",
            "Rolling CSAT ratio: responses scoring 4-5 / all (0..1).",
            labels=w,
        )
        self.csat_win = new(
            GaugeMetricFamily,
            "cx_csat_window_responses",
            "CSAT responses in the window by score.",
            labels=[*w, "score"],
        )
        self.ces_score = new(
            GaugeMetricFamily, "cx_ces_score", "Rolling mean CES score (1..7).", labels=w
        )
        self.ces_win = new(
            GaugeMetricFamily, "cx_ces_window_responses", "CES responses in the window.", labels=w
        )
        self.fcr_ratio = new(
            GaugeMetricFamily,
            "cx_fcr_ratio",
            "Rolling first-contact-resolution ratio (0..1).",
            labels=w,
        )
        self.fcr_win = new(
            GaugeMetricFamily,
            "cx_fcr_window_tickets",
            "First-resolved tickets in the window by first-contact status.",
            labels=[*w, "first_contact"],
        )
        self.frt_win = new(
            _Summary,
            "cx_first_response_window_seconds",
            "First response times placed in the window (quantiles within 2% relative error).",
            labels=w,
        )
        self.res_win = new(
            _Summary,
            "cx_resolution_window_seconds",
            "Resolution times placed in the window (quantiles within 2% relative error).",
            labels=w,
        )
        self.firing = new(
            GaugeMetricFamily,
            "cx_alerts_firing",
            "Alerts firing now.",
            labels=["alertname", "severity"],
        )
        self.bounds = [
            (metric, fam)
            for metric, name, help_text in BOUND_FAMILIES
            # Bounds cost the most to compute: none for a family left out.
            if (fam := new(GaugeMetricFamily, name, help_text, labels=[*w, "bound"])) is not DISCARD
        ]
        self.firing_total: dict[tuple[str, str], int] = {}
        self.extensions = _BusinessAndSla(d, business, sla, new)
        # A collection of only a few families (a selective scrape, or the
        # ones that move with every scrape) skips walking every key's
        # counters and windows.
        self.any_keyed = bool(self.bounds) or any(f is not DISCARD for f in self._keyed())

    def add(self, view: KeyView) -> None:
        """One key's samples."""
        lv = view.labels
        if self.any_keyed:
            self._add_keyed(view, lv)
        for key, n in view.firing.items():
            self.firing_total[key] = self.firing_total.get(key, 0) + n
        self.extensions.add(view, lv)

    def _add_keyed(self, view: KeyView, lv: tuple[str, ...]) -> None:
        c = view.counters
        for category in NPS_CATEGORIES:
            self.nps.add_metric((*lv, category), c.nps.get(category, 0))
        for score, n in sorted(c.csat.items()):
            self.csat.add_metric((*lv, str(score)), n)
        for score, n in sorted(c.ces.items()):
            self.ces.add_metric((*lv, str(score)), n)
        for priority, n in sorted(c.created.items()):
            self.created.add_metric((*lv, priority), n)
        for (priority, first_contact), n in sorted(c.resolved.items()):
            self.resolved.add_metric((*lv, priority, str(first_contact).lower()), n)
        for priority, n in sorted(c.reopened.items()):
            self.reopened.add_metric((*lv, priority), n)
        for priority, n in sorted(c.open.items()):
            self.open.add_metric((*lv, priority), n)
        for priority, hist in sorted(c.first_response.items()):
            _histogram(self.frt, (*lv, priority), hist)
        for priority, hist in sorted(c.resolution.items()):
            _histogram(self.res, (*lv, priority), hist)
        for snap in view.windows:
            wl = (snap.window, *lv)
            for category in NPS_CATEGORIES:
                self.nps_win.add_metric((*wl, category), snap.nps[category])
            for score in range(1, 6):
                self.csat_win.add_metric((*wl, str(score)), snap.csat[score])
            self.ces_win.add_metric(wl, snap.ces_count)
            self.fcr_win.add_metric((*wl, "true"), snap.fcr[True])
            self.fcr_win.add_metric((*wl, "false"), snap.fcr[False])
            # Ratio and score gauges are absent while their window is empty.
            if (nps := snap.nps_score) is not None:
                self.nps_score.add_metric(wl, nps)
            if (csat := snap.csat_ratio) is not None:
                self.csat_ratio.add_metric(wl, csat)
            if (ces := snap.ces_score) is not None:
                self.ces_score.add_metric(wl, ces)
            if (fcr := snap.fcr_ratio) is not None:
                self.fcr_ratio.add_metric(wl, fcr)
            if self.bounds_of is not None:
                for metric, fam in self.bounds:
                    # Absent while the window is empty (and CES below 2).
                    if (found := self.bounds_of(metric, snap)) is not None:
                        fam.add_metric((*wl, "lower"), found[0])
                        fam.add_metric((*wl, "upper"), found[1])
            _summary(self.frt_win, wl, snap.first_response)
            _summary(self.res_win, wl, snap.resolution)

    def _keyed(self) -> tuple[Any, ...]:
        """The families with series per key (all but alerts firing and the
        bounds), in exposition order."""
        return (
            self.nps,
            self.csat,
            self.ces,
            self.created,
            self.resolved,
            self.reopened,
            self.frt,
            self.res,
            self.open,
            self.nps_score,
            self.nps_win,
            self.csat_ratio,
            self.csat_win,
            self.ces_score,
            self.ces_win,
            self.fcr_ratio,
            self.fcr_win,
            self.frt_win,
            self.res_win,
        )

    def families(self) -> list[Metric]:
        """The families made, in the order of every exposition."""
        for (alertname, severity), n in sorted(self.firing_total.items()):
            self.firing.add_metric((alertname, severity), n)
        out = [fam for fam in (*self._keyed(), self.firing) if fam is not DISCARD]
        if self.bounds_of is not None:
            out += [fam for _, fam in self.bounds]
        return out + self.extensions.families()


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
        self._cache: dict[tuple[str, ...], _KeyText] = {}

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
        views = list(self._snapshot())
        names = self._names
        if names is not None:
            # A selective scrape (a probe polling one number often): only the
            # families asked for, from the snapshot, no cache.
            yield from self._filled(
                views, lambda name, suffixes: any(name + x in names for x in suffixes)
            )
            return
        # A full scrape: each key's lines are written once per change of its
        # state (or of its windows with the clock), straight to text by one
        # collection of ``Lines`` for all changed keys, and reused until
        # then; the few families that move with every scrape are made afresh.
        texts: dict[str, list[str]] = {}
        cache: dict[tuple[str, ...], _KeyText] = {}
        writer: _Collection | None = None
        for view in views:
            entry = self._cache.get(view.labels)
            if entry is None or not entry.valid_for(view):
                writer = writer or self._collection(_Families(_not_live, lines=True))
                entry = _KeyText(view.version, view.windows, self._key_texts(writer, view))
            if view.version is not None:
                cache[view.labels] = entry
            for name, text in entry.texts.items():
                texts.setdefault(name, []).append(text)
        self._cache = cache
        live = {f.name: f for f in self._filled(views, _live)}
        everything: list[Metric] = []

        def samples_of(name: str) -> list[Sample]:
            # prometheus_client's exposition (and get_sample_value) read the
            # samples: made once, for all families, from the same snapshot.
            if not everything:
                everything.extend(self._filled(views, _any))
            return next(f.samples for f in everything if f.name == name)

        for f in self._filled([], _any):
            if f.name in live:
                yield live[f.name]
            else:
                yield Rendered(f, "".join(texts.get(f.name, ())), samples_of)

    def _collection(self, new: _Families) -> _Collection:
        return _Collection(self.dimensions, new, self._bounds, self._business, self._sla)

    def _filled(self, views: Iterable[KeyView], keep: Keep) -> list[Metric]:
        fams = self._collection(_Families(keep))
        for view in views:
            fams.add(view)
        return fams.families()

    @staticmethod
    def _key_texts(writer: _Collection, view: KeyView) -> dict[str, str]:
        """One key's lines per family, written by ``writer`` (a collection
        of ``Lines``, reused key after key): the lines ``sample_lines``
        writes for the samples ``_filled([view], _not_live)`` makes."""
        writer.add(view)
        lines = cast(list[Lines], writer.families())
        return {f.name: f.take() for f in lines}


@dataclass(slots=True)
class _KeyText:
    """One key's rendered lines per family (live families excepted), valid
    while the key's state version and windows snapshot are the ones seen."""

    version: int | None
    windows: Sequence[WindowSnapshot]
    texts: dict[str, str]

    def valid_for(self, view: KeyView) -> bool:
        # The windows list is the state's cached snapshot: the same object
        # until the state changes or the clock crosses a bucket edge.
        return (
            view.version is not None
            and view.version == self.version
            and view.windows is self.windows
        )
