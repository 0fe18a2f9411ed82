"""The Prometheus text format, byte for byte as prometheus_client writes it,
in about half the time.

``prometheus_client.generate_latest`` validates and escapes every label
name and value of every sample on every scrape: about 10 us a line, 80 % of
a scrape of cxstream's few thousand window and counter series per key set
(the collector itself takes the rest). The names and values repeat from one
sample and one scrape to the next, so here each label set's rendered text is
kept in a bounded cache keyed by the label pairs as given; the value is
formatted as prometheus_client formats it. Families this fast path does not
handle (timestamps, OpenMetrics-only samples such as ``_created``) are
handed to prometheus_client whole, so the output stays identical (a test
compares the two on a full worker registry).

A collector can skip the samples too: the ``Lines`` families take the same
``add_metric`` calls as prometheus_client's and write the lines at once,
each line's start (name and labels) cached by its label values. The
collector writes a changed key's ~170 lines that way, in less than half the
time of Samples written by ``sample_lines`` (tests/test_exposition_lines.py
compares them with ``generate_latest``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from functools import lru_cache
from typing import Any, cast

from prometheus_client import generate_latest, utils
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.samples import Sample

#: prometheus_client's value formatting (untyped there)
_go_value = cast(Callable[[float], str], utils.floatToGoString)
_INF = float("inf")
#: the text of counts below this (over half of a scrape's values), made once
_SMALL = 1024
_COUNTS = tuple(repr(float(n)) for n in range(_SMALL))


def value_text(value: float) -> str:
    """A sample's value as ``floatToGoString`` writes it: small counts in a
    fifth of its time, other finite values below 1e6 in three quarters.

    For a finite float below 1e6 that function returns ``repr``: it spells
    only infinities and NaN its own way, and switches to Go's exponent form
    only for positive values with more than six integer digits. Counts and
    ratios, most of a scrape, are such values; the rest are handed to it.
    Small counts are looked up in a table.
    """
    if type(value) is int and 0 <= value < _SMALL:
        return _COUNTS[value]
    f = float(value)
    if -_INF < f < 1e6:  # False for NaN too
        return repr(f)
    return _go_value(f)


#: label pairs -> rendered ``{...}`` text; cleared when it grows past this
#: (label values are bounded by design, so this is a safety net only)
_CACHE_MAX = 200_000
_labels: dict[tuple[tuple[str, str], ...], str] = {}
_names: dict[str, str] = {}
#: how prometheus_client renames a family's type in the text format
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}
_SUFFIX = {"counter": "_total", "info": "_info"}
_OM_ONLY = ("_created", "_gsum", "_gcount")


class _One:
    """One family as a collector, for prometheus_client's own formatting."""

    def __init__(self, metric: Any) -> None:
        self.metric = metric

    def collect(self) -> list[Any]:
        return [self.metric]


def _name(name: str) -> str:
    out = _names.get(name)
    if out is None:
        out = _names[name] = om.escape_metric_name(name, om.UNDERSCORES)
    return out


@lru_cache(maxsize=_CACHE_MAX)  # label names and values are few: each pair escaped once
def _pair_text(name: str, value: str) -> str:
    # The arguments generate_latest passes (its third is typed as a
    # callable, and False is what it gives).
    return (
        f'{om.escape_label_name(name, om.UNDERSCORES)}="{om._escape(value, om.ALLOWUTF8, False)}"'  # type: ignore[arg-type]
    )


def _render_labels(pairs: Iterable[tuple[str, str]]) -> str:
    """``{name="value",...}`` sorted as prometheus_client sorts, escaped as it escapes."""
    body = ",".join([_pair_text(k, v) for k, v in sorted(pairs)])
    return "{" + body + "}" if body else ""


def _label_text(pairs: tuple[tuple[str, str], ...]) -> str:
    text = _labels.get(pairs)
    if text is None:
        if len(_labels) >= _CACHE_MAX:
            _labels.clear()
        text = _labels[pairs] = _render_labels(pairs)
    return text


def _simple(metric: Any) -> bool:
    om_only = {metric.name + suffix for suffix in _OM_ONLY}
    return all(s.timestamp is None and s.name not in om_only for s in metric.samples)


def _restricted(metric: Any, names: Collection[str]) -> Any | None:
    """The family with only the samples named in ``names`` (None if none
    is): what prometheus_client's ``restricted_registry`` keeps."""
    samples = [s for s in metric.samples if s.name in names]
    if not samples:
        return None
    out = Metric(metric.name, metric.documentation, metric.type)
    out.samples = samples
    return out


class Rendered(Metric):
    """A family whose sample lines are already written (``lines``, as
    ``sample_lines`` writes them, for the collector that keeps them between
    scrapes). Its ``samples`` are made only when something reads them
    (prometheus_client's own exposition, ``get_sample_value``)."""

    def __init__(self, like: Metric, lines: str, samples: Callable[[str], list[Sample]]) -> None:
        # Not Metric.__init__: it would validate and set what is copied here.
        self.name, self.documentation, self.type, self.unit = (
            like.name,
            like.documentation,
            like.type,
            like.unit,
        )
        self.lines = lines
        self._make = samples
        self._samples: list[Sample] | None = None

    @property
    def samples(self) -> list[Sample]:
        if self._samples is None:
            self._samples = self._make(self.name)
        return self._samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._samples = value


def sample_lines(samples: Iterable[Sample]) -> str:
    """The text lines of samples without timestamps or OpenMetrics-only names."""
    return "".join(
        f"{_name(s.name)}{_label_text(tuple(s.labels.items())) if s.labels else ''} {value_text(s.value)}\n"
        for s in samples
    )


class _LineStarts(dict[tuple[str, ...], str]):
    """What ``sample_lines`` writes before the value of a sample of one name
    and label names, ``name{labels} ``, by the sample's label values: made
    once (as prometheus_client's families make a label dict, then sorted and
    escaped), looked up after that."""

    def __init__(self, name: str, labelnames: tuple[str, ...]) -> None:
        super().__init__()
        self.name, self.labelnames = name, labelnames

    def __missing__(self, values: tuple[str, ...]) -> str:
        if len(self) >= _CACHE_MAX:
            self.clear()
        # dict(zip(...)): a label name given twice keeps its last value, as
        # in the families' label dicts.
        labels = _render_labels(dict(zip(self.labelnames, values, strict=True)).items())
        text = self[values] = f"{_name(self.name)}{labels} "
        return text


#: (sample name, label names) -> its line starts, shared by every writer
_starts: dict[tuple[str, tuple[str, ...]], _LineStarts] = {}


def _line_starts(name: str, labelnames: tuple[str, ...]) -> _LineStarts:
    found = _starts.get((name, labelnames))
    if found is None:
        found = _starts[name, labelnames] = _LineStarts(name, labelnames)
    return found


class Lines:
    """A family that writes its samples' lines instead of keeping Samples:
    the lines ``sample_lines`` writes for the samples prometheus_client's
    family of the same kind would add, without a Sample, a label dict or a
    sort per sample. Subclasses take the ``add_metric`` calls of one kind,
    with the label values as a tuple (the key of the line starts' cache);
    ``suffixes`` are the endings of the sample names it writes."""

    suffixes: tuple[str, ...] = ()

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.labelnames = tuple(labelnames)
        self._out: list[str] = []

    def take(self) -> str:
        """The lines written since the last ``take``."""
        text = "".join(self._out)
        self._out.clear()
        return text

    def _starts(self, suffix: str, *extra: str) -> _LineStarts:
        return _line_starts(self.name + suffix, (*self.labelnames, *extra))


class CounterLines(Lines):
    """``CounterMetricFamily`` (no ``_created``: these have none)."""

    suffixes = ("_total",)

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        # CounterMetricFamily drops a "_total" it is given: it writes it back.
        super().__init__(name.removesuffix("_total"), labelnames)
        self._total = self._starts("_total")

    def add_metric(self, labels: tuple[str, ...], value: float) -> None:
        self._out.append(f"{self._total[labels]}{value_text(value)}\n")


class GaugeLines(Lines):
    """``GaugeMetricFamily``."""

    suffixes = ("",)

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, labelnames)
        self._value = self._starts("")

    def add_metric(self, labels: tuple[str, ...], value: float) -> None:
        self._out.append(f"{self._value[labels]}{value_text(value)}\n")


class HistogramLines(Lines):
    """``HistogramMetricFamily`` (buckets without exemplars)."""

    suffixes = ("_bucket", "_count", "_sum")

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, labelnames)
        self._bucket = self._starts("_bucket", "le")
        self._count = self._starts("_count")
        self._sum = self._starts("_sum")

    def add_metric(
        self, labels: tuple[str, ...], buckets: Sequence[tuple[str, float]], sum_value: float | None
    ) -> None:
        out, bucket = self._out, self._bucket
        for le, count in buckets:
            out.append(f"{bucket[(*labels, le)]}{value_text(count)}\n")
        # As HistogramMetricFamily: no _count and _sum with negative buckets.
        if float(buckets[0][0]) >= 0 and sum_value is not None:
            out.append(f"{self._count[labels]}{value_text(buckets[-1][1])}\n")
            out.append(f"{self._sum[labels]}{value_text(sum_value)}\n")


class SummaryLines(Lines):
    """``SummaryMetricFamily``, and quantile samples (``add_quantile``,
    which prometheus_client's family lacks: a collector appends them)."""

    suffixes = ("", "_count", "_sum")

    def __init__(self, name: str, labelnames: Sequence[str]) -> None:
        super().__init__(name, labelnames)
        self._quantile = self._starts("", "quantile")
        self._count = self._starts("_count")
        self._sum = self._starts("_sum")

    def add_quantile(self, labels: tuple[str, ...], quantile: str, value: float) -> None:
        self._out.append(f"{self._quantile[(*labels, quantile)]}{value_text(value)}\n")

    def add_metric(self, labels: tuple[str, ...], count_value: float, sum_value: float) -> None:
        self._out.append(f"{self._count[labels]}{value_text(count_value)}\n")
        self._out.append(f"{self._sum[labels]}{value_text(sum_value)}\n")


def _header(metric: Any) -> str:
    mname = _name(metric.name + _SUFFIX.get(metric.type, ""))
    doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {mname} {doc}\n# TYPE {mname} {_TYPES.get(metric.type, metric.type)}\n"


def generate(registry: Any, names: Collection[str] | None = None) -> bytes:
    """What ``generate_latest(registry)`` returns (default escaping); with
    ``names``, only the samples of those names (``/metrics?name[]=...``)."""
    out: list[str] = []
    append = out.append
    for metric in registry.collect():
        if isinstance(metric, Rendered) and names is None:
            append(_header(metric))
            append(metric.lines)
            continue
        if names is not None and (metric := _restricted(metric, names)) is None:
            continue
        if not _simple(metric):
            append(generate_latest(_One(metric)).decode("utf-8"))
            continue
        append(_header(metric))
        append(sample_lines(metric.samples))
    return "".join(out).encode("utf-8")
