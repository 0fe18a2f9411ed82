"""The state of one dims key: rolling event-time windows, counters, histograms.

Each configured window W keeps coarse buckets W/60 wide (about 61 live
buckets), so a 30-day window costs the same memory at one event a day or a
million: counts, exact integer sums and a quantile sketch per bucket, never
one entry per event. An observation is in W at ``now`` when
``placed <= now`` and its bucket ``[start, start + W/60)`` ends after
``now - W`` (the contract allows quantising the old edge to W/60).

Observations placed in the future (sources' clocks run ahead by up to five
minutes) wait in ``pending`` until ``now`` reaches them.

Replays are harmless: an observation id is its position on the route topic,
``"P:O:S"`` (route partition, offset of the record that produced it, index
within that record's observations). Observations from one route partition
reach a key in order, so one high-water mark per route partition recognises
any replayed observation in O(partitions) memory.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import orjson

from streams.domain.model import (
    DURATION_BUCKETS_S,
    SUMMARY_QUANTILES,
    US_PER_S,
    CountersSnapshot,
    DurationSummary,
    HistogramSnapshot,
    Observation,
    WindowSnapshot,
    WindowSpec,
)
from streams.domain.quantiles import Sketch

_HIST_BOUNDS_US = [int(b * US_PER_S) for b in DURATION_BUCKETS_S]
_WINDOW_KINDS = frozenset({"nps", "csat", "ces", "first_response", "resolution", "fcr"})
_FORMAT = 1


def obs_id(partition: int, offset: int, index: int) -> str:
    """The id of the index-th observation produced by route record (partition, offset)."""
    return f"{partition}:{offset}:{index}"


def parse_obs_id(text: str) -> tuple[int, tuple[int, int]]:
    partition, offset, index = text.split(":")
    return int(partition), (int(offset), int(index))


def nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


class _Durations:
    """Exact count and sum plus a sketch, for one bucket and one duration kind."""

    __slots__ = ("count", "sketch", "sum_us")

    def __init__(self) -> None:
        self.count = 0
        self.sum_us = 0
        self.sketch = Sketch()

    def add(self, value: int, sign: int) -> None:
        if sign > 0:
            self.count += 1
            self.sum_us += value
            self.sketch.add(value)
        elif self.count > 0:
            self.count -= 1
            self.sum_us -= value
            self.sketch.remove(value)

    def to_json(self) -> list[Any]:
        return [self.count, self.sum_us, self.sketch.to_json()]

    @classmethod
    def from_json(cls, doc: list[Any]) -> _Durations:
        d = cls()
        d.count, d.sum_us = doc[0], doc[1]
        d.sketch = Sketch.from_json(doc[2])
        return d


class _Bucket:
    """Everything observed in one time bucket of one window."""

    __slots__ = ("ces", "csat", "fcr", "frt", "nps", "res")

    def __init__(self) -> None:
        self.nps = [0, 0, 0]  # promoter, passive, detractor
        self.csat = [0, 0, 0, 0, 0]  # scores 1..5
        self.ces = [0, 0]  # count, sum
        self.fcr = [0, 0]  # first contact false, true
        self.frt = _Durations()
        self.res = _Durations()

    def add(self, kind: str, value: int, sign: int) -> None:
        if kind == "nps":
            i = 0 if value >= 9 else 1 if value >= 7 else 2
            self.nps[i] = max(0, self.nps[i] + sign)
        elif kind == "csat":
            if 1 <= value <= 5:
                self.csat[value - 1] = max(0, self.csat[value - 1] + sign)
        elif kind == "ces":
            if sign > 0:
                self.ces[0] += 1
                self.ces[1] += value
            elif self.ces[0] > 0:
                self.ces[0] -= 1
                self.ces[1] -= value
        elif kind == "fcr":
            i = 1 if value == 1 else 0
            self.fcr[i] = max(0, self.fcr[i] + sign)
        elif kind == "first_response":
            self.frt.add(value, sign)
        elif kind == "resolution":
            self.res.add(value, sign)

    def to_json(self) -> list[Any]:
        return [self.nps, self.csat, self.ces, self.fcr, self.frt.to_json(), self.res.to_json()]

    @classmethod
    def from_json(cls, doc: list[Any]) -> _Bucket:
        b = cls()
        b.nps, b.csat, b.ces, b.fcr = list(doc[0]), list(doc[1]), list(doc[2]), list(doc[3])
        b.frt = _Durations.from_json(doc[4])
        b.res = _Durations.from_json(doc[5])
        return b


class _Histogram:
    __slots__ = ("buckets", "sum_us")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_HIST_BOUNDS_US) + 1)
        self.sum_us = 0

    def observe(self, value_us: int) -> None:
        # le semantics: a value equal to a bound belongs to that bound's bucket.
        self.buckets[bisect.bisect_left(_HIST_BOUNDS_US, value_us)] += 1
        self.sum_us += value_us


def _window_edge(spec: WindowSpec) -> int:
    return spec.us // 60


class DimsState:
    """Table value of one dims key (one ``(channel, team)``)."""

    def __init__(self, dims: tuple[str, ...], windows: Sequence[WindowSpec]) -> None:
        self.dims = tuple(dims)
        self.specs = tuple(windows)
        self.series: dict[str, dict[int, _Bucket]] = {w.name: {} for w in self.specs}
        self.pending: list[tuple[str, int, int, int]] = []  # kind, placed_us, value, sign
        self.hwm: dict[int, tuple[int, int]] = {}  # route partition -> (offset, index) applied
        # Counters (never rewound)
        self.nps: dict[str, int] = {}
        self.csat: dict[int, int] = {}
        self.ces: dict[int, int] = {}
        self.created: dict[str, int] = {}
        self.resolved: dict[tuple[str, bool], int] = {}
        self.reopened: dict[str, int] = {}
        self.open: dict[str, int] = {}
        self.frt_hist: dict[str, _Histogram] = {}
        self.res_hist: dict[str, _Histogram] = {}
        # Managed by the pipeline, persisted here.
        self.partition = -1
        self.source_offset = -1
        self.alerts: dict[str, Any] = {}

    @classmethod
    def new(cls, dims: tuple[str, ...], windows: Sequence[WindowSpec]) -> DimsState:
        return cls(dims, windows)

    # -- applying ------------------------------------------------------------

    def apply(self, obs: Observation, now_us: int) -> bool:
        """Apply one observation at processing time ``now_us``; False if it was
        already applied (a replay), in which case nothing changes."""
        partition, position = parse_obs_id(obs.obs_id)
        if position <= self.hwm.get(partition, (-1, -1)):
            return False
        self.hwm[partition] = position
        if self.pending:
            self._promote(now_us)
        if obs.counted:
            self._count(obs)
        if obs.kind == "open":
            self.open[obs.priority] = self.open.get(obs.priority, 0) + obs.value
        if obs.kind in _WINDOW_KINDS:
            if obs.placed_us > now_us:
                self.pending.append((obs.kind, obs.placed_us, obs.value, obs.sign))
            else:
                self._place(obs.kind, obs.placed_us, obs.value, obs.sign, now_us)
        return True

    def _count(self, obs: Observation) -> None:
        kind, value, prio = obs.kind, obs.value, obs.priority
        if kind == "nps":
            cat = nps_category(value)
            self.nps[cat] = self.nps.get(cat, 0) + 1
        elif kind == "csat":
            self.csat[value] = self.csat.get(value, 0) + 1
        elif kind == "ces":
            self.ces[value] = self.ces.get(value, 0) + 1
        elif kind == "ticket_created":
            self.created[prio] = self.created.get(prio, 0) + 1
        elif kind == "first_response":
            self.frt_hist.setdefault(prio, _Histogram()).observe(value)
        elif kind == "resolution":
            self.res_hist.setdefault(prio, _Histogram()).observe(value)
        elif kind == "fcr":
            key = (prio, value == 1)
            self.resolved[key] = self.resolved.get(key, 0) + 1
        elif kind == "reopened":
            self.reopened[prio] = self.reopened.get(prio, 0) + 1

    def _place(self, kind: str, placed_us: int, value: int, sign: int, now_us: int) -> None:
        for spec in self.specs:
            width = _window_edge(spec)
            start = placed_us - placed_us % width
            if start + width <= now_us - spec.us:
                continue  # already outside this window, and it only slides on
            buckets = self.series[spec.name]
            bucket = buckets.get(start)
            if bucket is None:
                if sign < 0:
                    continue  # nothing to retract
                bucket = buckets[start] = _Bucket()
            bucket.add(kind, value, sign)

    def _promote(self, now_us: int) -> None:
        due = [p for p in self.pending if p[1] <= now_us]
        if due:
            self.pending = [p for p in self.pending if p[1] > now_us]
            for kind, placed, value, sign in due:
                self._place(kind, placed, value, sign, now_us)

    def expire(self, now_us: int) -> None:
        """Promote due future observations and drop buckets outside every
        window: memory stays bounded."""
        self._promote(now_us)
        for spec in self.specs:
            width = _window_edge(spec)
            buckets = self.series[spec.name]
            for start in [s for s in buckets if s + width <= now_us - spec.us]:
                del buckets[start]

    # -- reading -------------------------------------------------------------

    def windows(self, now_us: int) -> list[WindowSnapshot]:
        out = []
        for spec in self.specs:
            width = _window_edge(spec)
            edge = now_us - spec.us
            live = [
                b
                for start, b in self.series[spec.name].items()
                if start + width > edge and start <= now_us
            ]
            extra = _Bucket()
            for kind, placed, value, sign in self.pending:
                if placed <= now_us and placed - placed % width + width > edge:
                    extra.add(kind, value, sign)
            live.append(extra)
            out.append(_snapshot(spec.name, live))
        return out

    def counters(self) -> CountersSnapshot:
        return CountersSnapshot(
            nps=dict(self.nps),
            csat=dict(self.csat),
            ces=dict(self.ces),
            created=dict(self.created),
            resolved=dict(self.resolved),
            reopened=dict(self.reopened),
            open=dict(self.open),
            first_response={
                p: HistogramSnapshot(tuple(h.buckets), h.sum_us) for p, h in self.frt_hist.items()
            },
            resolution={
                p: HistogramSnapshot(tuple(h.buckets), h.sum_us) for p, h in self.res_hist.items()
            },
        )

    # -- storage -------------------------------------------------------------

    def to_bytes(self) -> bytes:
        doc = {
            "v": _FORMAT,
            "dims": list(self.dims),
            "p": self.partition,
            "o": self.source_offset,
            "a": self.alerts,
            "w": {
                spec.name: [
                    spec.seconds,
                    [[s, b.to_json()] for s, b in sorted(self.series[spec.name].items())],
                ]
                for spec in self.specs
            },
            "pend": self.pending,
            "hwm": [[p, o, s] for p, (o, s) in sorted(self.hwm.items())],
            "c": {
                "nps": self.nps,
                "csat": list(self.csat.items()),
                "ces": list(self.ces.items()),
                "created": self.created,
                "resolved": [[p, fc, n] for (p, fc), n in self.resolved.items()],
                "reopened": self.reopened,
                "open": self.open,
                "frt": {p: [h.buckets, h.sum_us] for p, h in self.frt_hist.items()},
                "res": {p: [h.buckets, h.sum_us] for p, h in self.res_hist.items()},
            },
        }
        return orjson.dumps(doc)

    @classmethod
    def from_bytes(cls, data: bytes, windows: Sequence[WindowSpec]) -> DimsState:
        doc = orjson.loads(data)
        state = cls(tuple(doc["dims"]), windows)
        state.partition = doc["p"]
        state.source_offset = doc["o"]
        state.alerts = doc.get("a", {})
        for spec in state.specs:
            stored = doc["w"].get(spec.name)
            # A window whose length changed under the same name starts afresh.
            if stored is not None and stored[0] == spec.seconds:
                state.series[spec.name] = {s: _Bucket.from_json(b) for s, b in stored[1]}
        state.pending = [(k, pl, v, s) for k, pl, v, s in doc["pend"]]
        state.hwm = {p: (o, s) for p, o, s in doc["hwm"]}
        c = doc["c"]
        state.nps = dict(c["nps"])
        state.csat = {int(k): n for k, n in c["csat"]}
        state.ces = {int(k): n for k, n in c["ces"]}
        state.created = dict(c["created"])
        state.resolved = {(p, bool(fc)): n for p, fc, n in c["resolved"]}
        state.reopened = dict(c["reopened"])
        state.open = dict(c["open"])
        for name, target in (("frt", state.frt_hist), ("res", state.res_hist)):
            for p, (buckets, sum_us) in c[name].items():
                h = _Histogram()
                h.buckets, h.sum_us = list(buckets), sum_us
                target[p] = h
        return state


def _summary(parts: list[_Durations]) -> DurationSummary:
    count = sum(d.count for d in parts)
    sum_us = sum(d.sum_us for d in parts)
    if count == 0:
        return DurationSummary(0, 0, {})
    sketch = Sketch.merged(d.sketch for d in parts)
    quantiles = {}
    for q in SUMMARY_QUANTILES:
        est = sketch.quantile(q)
        quantiles[q] = 0.0 if est is None else est / US_PER_S
    return DurationSummary(count, sum_us, quantiles)


def _snapshot(name: str, buckets: list[_Bucket]) -> WindowSnapshot:
    nps = [0, 0, 0]
    csat = [0, 0, 0, 0, 0]
    ces = [0, 0]
    fcr = [0, 0]
    for b in buckets:
        for i in range(3):
            nps[i] += b.nps[i]
        for i in range(5):
            csat[i] += b.csat[i]
        ces[0] += b.ces[0]
        ces[1] += b.ces[1]
        fcr[0] += b.fcr[0]
        fcr[1] += b.fcr[1]
    return WindowSnapshot(
        window=name,
        nps={"promoter": nps[0], "passive": nps[1], "detractor": nps[2]},
        csat={i + 1: csat[i] for i in range(5)},
        ces_count=ces[0],
        ces_sum=ces[1],
        fcr={True: fcr[1], False: fcr[0]},
        first_response=_summary([b.frt for b in buckets]),
        resolution=_summary([b.res for b in buckets]),
    )
