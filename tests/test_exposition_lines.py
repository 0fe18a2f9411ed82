"""The exposition's fast paths write exactly what prometheus_client writes:
values as ``floatToGoString`` formats them, the line writers (``Lines``) as
``generate_latest`` writes the samples of the families they stand for, and
the collector's pages, with keys rendered afresh and reused, as
``generate_latest`` writes the same snapshot, for every kind of value, label
value and configuration the collector takes."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from streams.domain.confidence import WindowBounds
from streams.domain.model import (
    DURATION_BUCKETS_S,
    SLA_PENDING_STATES,
    SLA_TARGETS,
    SUMMARY_QUANTILES,
    CountersSnapshot,
    DurationSummary,
    HistogramSnapshot,
    WindowSnapshot,
)
from streams.exposition.collectors import BOUND_FAMILIES, CxCollector, KeyView, _Summary
from streams.exposition.text import (
    CounterLines,
    GaugeLines,
    HistogramLines,
    Lines,
    SummaryLines,
    generate,
    value_text,
)

#: where floatToGoString changes form (Go's exponents from 1e6, Python's
#: from 1e16 and below 1e-4, infinities, NaN, signed zeros) and value_text
#: changes path
EDGES = (
    *(0, 0.0, -0.0, 1, -1, 5e-324, 1e-4, 9.999e-5, 0.1, 1 / 3, 2**53, -(2**53), 2**70),
    *(1023, 1024, 1023.0, 1024.0),  # the table of small counts ends
    *(999_999, 999_999.999_999_9, 1e6, 1_000_000, 1_000_001, 1e6 + 0.5, -1e6, -1e7, 1e15),
    *(1e16, 1e16 - 2, 1e17, -1e17, 1.7976931348623157e308, math.inf, -math.inf, math.nan),
    *(True, False),
)


def test_values_at_the_edges_of_each_form_are_written_as_float_to_go_string_writes_them() -> None:
    for value in EDGES:
        assert value_text(value) == floatToGoString(value), value


@settings(max_examples=2000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**20), max_value=10**20),
    )
)
def test_values_are_written_as_float_to_go_string_writes_them(value: float) -> None:
    assert value_text(value) == floatToGoString(value)


# -- strategies ---------------------------------------------------------------

#: label values that need escaping, are empty, are not ASCII or look like numbers
SPECIAL = ("", "a", "back\\slash", 'a "quote"', "new\nline", '\\"\n', "ünï", "+Inf", "Z", "0")
label_values = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=6),  # no lone surrogates
)
#: dims names, some of them also a family's own label name (settings allow it)
DIM_NAMES = ("channel", "team", "region", "a", "zz", "window", "priority", "score", "le", "bound")
dimensions = st.lists(st.sampled_from(DIM_NAMES), min_size=1, max_size=3, unique=True)
counts = st.one_of(st.integers(0, 30), st.integers(0, 10**18))
gauges = st.one_of(counts, st.integers(-(10**7), 0))
floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([x for x in EDGES if not isinstance(x, bool)]),
)
priorities = st.one_of(st.sampled_from(("urgent", "high", "normal", "low")), label_values)


def summaries() -> st.SearchStrategy[DurationSummary]:
    quantiles = st.one_of(
        st.just({}),
        st.fixed_dictionaries({q: floats for q in SUMMARY_QUANTILES}),
        st.dictionaries(st.floats(0, 1), floats, max_size=3),
    )
    return st.builds(DurationSummary, counts, st.integers(0, 10**20), quantiles)


histograms = st.builds(
    HistogramSnapshot,
    st.tuples(*[counts] * (len(DURATION_BUCKETS_S) + 1)),
    st.integers(0, 10**20),
)


@st.composite
def windows(draw: st.DrawFn) -> WindowSnapshot:
    """Empty (every ratio and score absent) or filled, with or without the
    business and SLA parts."""
    empty = draw(st.booleans())
    n = st.just(0) if empty else counts
    ces_count = draw(n)
    return WindowSnapshot(
        window=draw(st.one_of(st.sampled_from(("1h", "24h", "7d", "30d")), label_values)),
        nps={c: draw(n) for c in ("promoter", "passive", "detractor")},
        csat={s: draw(n) for s in range(1, 6)},
        ces_count=ces_count,
        ces_sum=draw(st.integers(ces_count, 7 * ces_count)),
        fcr={True: draw(n), False: draw(n)},
        first_response=draw(summaries()),
        resolution=draw(summaries()),
        ces_sum_sq=draw(st.one_of(st.none(), st.integers(0, 49 * max(ces_count, 1) ** 2))),
        first_response_business=draw(st.one_of(st.none(), summaries())),
        resolution_business=draw(st.one_of(st.none(), summaries())),
        sla_achieved=draw(
            st.one_of(
                st.none(),
                st.dictionaries(st.sampled_from(SLA_TARGETS), st.tuples(n, n), max_size=2),
            )
        ),
    )


@st.composite
def counters(draw: st.DrawFn) -> CountersSnapshot:
    def by_priority(values: st.SearchStrategy[Any]) -> Any:
        return draw(st.dictionaries(priorities, values, max_size=3))

    targets = st.sampled_from(SLA_TARGETS)
    return CountersSnapshot(
        nps=draw(st.dictionaries(st.sampled_from(("promoter", "passive", "detractor")), counts)),
        csat=draw(st.dictionaries(st.integers(1, 5), counts)),
        ces=draw(st.dictionaries(st.integers(1, 7), counts)),
        created=by_priority(counts),
        resolved=draw(st.dictionaries(st.tuples(priorities, st.booleans()), counts, max_size=4)),
        reopened=by_priority(counts),
        open=by_priority(gauges),
        first_response=by_priority(histograms),
        resolution=by_priority(histograms),
        first_response_business=by_priority(histograms),
        resolution_business=by_priority(histograms),
        sla_breaches=draw(st.dictionaries(st.tuples(priorities, targets), counts, max_size=4)),
        sla_pending=draw(
            st.dictionaries(
                st.tuples(priorities, targets, st.sampled_from(SLA_PENDING_STATES)),
                gauges,
                max_size=6,
            )
        ),
        sla_next_due_us=draw(st.dictionaries(targets, st.integers(-(10**15), 10**15))),
    )


NOW_US = 1_700_000_000_000_000


@st.composite
def views(draw: st.DrawFn, dims: int, version: int) -> KeyView:
    return KeyView(
        labels=tuple(draw(label_values) for _ in range(dims)),
        windows=draw(st.lists(windows(), max_size=4)),
        counters=draw(counters()),
        firing=draw(
            st.dictionaries(st.tuples(label_values, label_values), counts, max_size=2),
        ),
        now_us=NOW_US,
        version=draw(st.sampled_from((version, None))),
    )


class Frozen:
    """The families of one collection, collected again as they were: the
    fast text and prometheus_client's samples of the same snapshot."""

    def __init__(self, reg: CollectorRegistry) -> None:
        self.families = list(reg.collect())

    def collect(self) -> list[Any]:
        return self.families


class Bounds:
    """A confidence-bound source answering from a table: any float (NaN,
    infinities, negatives), or nothing, per metric and window name."""

    def __init__(self, table: dict[tuple[str, str], tuple[float, float]]) -> None:
        self.table = table

    def __call__(self, metric: str, snap: WindowSnapshot) -> tuple[float, float] | None:
        return self.table.get((metric, snap.window))


bound_sources = st.one_of(
    st.none(),
    st.just(WindowBounds(0.95)),
    st.builds(
        Bounds,
        st.dictionaries(
            st.tuples(
                st.sampled_from([metric for metric, _, _ in BOUND_FAMILIES]),
                st.sampled_from(("1h", "24h", "7d", "30d", *SPECIAL)),
            ),
            st.tuples(floats, floats),
        ),
    ),
)


# -- the line writers -----------------------------------------------------------


def _lines_of(family: Any) -> bytes:
    """What generate_latest writes for the samples of one family."""

    class One:
        def collect(self) -> list[Any]:
            return [family]

    return b"".join(
        line + b"\n"
        for line in generate_latest(One()).split(b"\n")
        if line and not line.startswith(b"#")
    )


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from((*DIM_NAMES, "quantile", "a.b", "_x")), max_size=3, unique=True),
    st.data(),
)
def test_each_writer_writes_what_generate_latest_writes_for_its_family(
    names: list[str], data: st.DataObject
) -> None:
    label_sets = st.tuples(*[label_values] * len(names))
    pairs: list[tuple[Any, Lines, Any]] = [
        (CounterMetricFamily("demo", "d", labels=names), CounterLines("demo", names), floats),
        (GaugeMetricFamily("demo", "d", labels=names), GaugeLines("demo", names), floats),
    ]
    for family, lines, values in pairs:
        for labels, value in data.draw(st.lists(st.tuples(label_sets, values), max_size=4)):
            family.add_metric(labels, value)
            lines.add_metric(labels, value)
        assert lines.take().encode() == _lines_of(family)
        assert lines.take() == ""  # taken

    histogram = HistogramMetricFamily("demo", "d", labels=names)
    hist_lines = HistogramLines("demo", names)
    les = st.lists(st.sampled_from(("-1", "0", "0.5", "60", "1e+06")), max_size=3)
    for labels, bounds, sum_value in data.draw(
        st.lists(st.tuples(label_sets, les, st.one_of(st.none(), floats)), max_size=3)
    ):
        buckets = [(le, data.draw(floats)) for le in [*bounds, "+Inf"]]
        histogram.add_metric(labels, buckets, sum_value)
        hist_lines.add_metric(labels, buckets, sum_value)
    assert hist_lines.take().encode() == _lines_of(histogram)

    summary = _Summary("demo", "d", labels=names)
    summary_lines = SummaryLines("demo", names)
    for labels, quantiles, count, sum_value in data.draw(
        st.lists(
            st.tuples(label_sets, st.lists(st.tuples(label_values, floats)), counts, floats),
            max_size=3,
        )
    ):
        for family in (summary, summary_lines):
            for quantile, value in quantiles:
                family.add_quantile(labels, quantile, value)
            family.add_metric(labels, count_value=count, sum_value=sum_value)
    assert summary_lines.take().encode() == _lines_of(summary)


# -- the collector's pages --------------------------------------------------------


@st.composite
def scrapes(draw: st.DrawFn) -> tuple[list[str], list[KeyView], list[KeyView]]:
    """Dims names and the views of two scrapes: each key of the first is in
    the second the same view, a changed state, the same state with other
    windows (the clock crossed a bucket edge), or gone; new keys come."""
    dims = draw(dimensions)
    first = draw(st.lists(views(len(dims), 1), max_size=4, unique_by=_labels))
    second = []
    for view in first:
        fate = draw(st.sampled_from(("same", "changed", "windows", "gone")))
        if fate == "same":
            second.append(view)
        elif fate == "changed":
            second.append(replace(draw(views(len(dims), 2)), labels=view.labels))
        elif fate == "windows":
            second.append(replace(view, windows=draw(st.lists(windows(), max_size=4))))
    known = {v.labels for v in second}
    new = draw(st.lists(views(len(dims), 2), max_size=2, unique_by=_labels))
    return dims, first, second + [v for v in new if v.labels not in known]


def _labels(view: KeyView) -> tuple[str, ...]:
    return view.labels


#: sample names a selective scrape may ask for: of each kind, and live ones
SAMPLE_NAMES = (
    "cx_tickets_open",
    "cx_tickets_created_total",
    "cx_nps_score_bound",
    "cx_first_response_seconds_bucket",
    "cx_resolution_window_seconds",
    "cx_resolution_business_window_seconds_sum",
    "cx_sla_pending",
    "cx_sla_next_due_seconds",
    "cx_alerts_firing",
)


@settings(max_examples=200, deadline=None)
@given(
    scrapes(),
    bound_sources,
    st.booleans(),
    st.booleans(),
    st.sets(st.sampled_from(SAMPLE_NAMES)),
)
def test_pages_of_changed_and_unchanged_keys_are_what_generate_latest_writes(
    scrape: tuple[list[str], list[KeyView], list[KeyView]],
    bounds: Any,
    business: bool,
    sla: bool,
    selected: set[str],
) -> None:
    dims, first, second = scrape
    shown = [first]
    collector = CxCollector(dims, lambda: shown[0], bounds, business=business, sla=sla)
    reg = CollectorRegistry()
    reg.register(collector)
    for views_now in (first, second, second):  # keys new, changed or not, all reused
        shown[0] = views_now
        frozen = Frozen(reg)
        assert generate(frozen) == generate_latest(frozen)
    # The selective path (prometheus_client's families, the cached label text).
    with collector.selecting(frozenset(selected)):
        frozen = Frozen(reg)
    restricted = [m._restricted_metric(selected) for m in frozen.families]

    class Restricted:
        def collect(self) -> list[Any]:
            return [m for m in restricted if m is not None]

    assert generate(frozen, selected) == generate_latest(Restricted())
