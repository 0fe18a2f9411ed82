"""The state of one dims key: rolling event-time windows, counters, histograms.

Each configured window W keeps coarse buckets W/60 wide (about 61 live
buckets), so a 30-day window costs the same memory at one event a day or a
million: counts, exact integer sums and a quantile sketch per bucket, never
one entry per event. An observation is in W at ``now`` when
``placed <= now`` and its bucket ``[start, start + W/60)`` ends after
``now - W`` (the contract allows quantising the old edge to W/60).

Storage follows what changed, not what is kept: the state is a set of small
*rows* (one ``meta`` row with the counters, histograms and alert book, and
one row per bucket), and a batch writes only the rows it touched (see
``take_changes``). Beside the buckets, each window keeps a running total in
memory (rebuilt when rows are loaded), so a snapshot costs O(1) buckets, not
O(61), and is cached until the state changes or the clock crosses an edge.

Replays are harmless, row by row: an observation id is its position on the
route topic, ``"P:O:S"`` (route partition, offset of the record that produced
it, index within that record's observations). Observations from one route
partition reach a key in order, so each row keeps one high-water mark per
route partition and applies an observation only when it lies beyond that
row's mark. Rows are written independently, so after a crash some of a
batch's rows may have landed and others not; because every row judges a
replayed observation by its own mark, the replay fills in exactly the rows
that missed it.

Business-time durations and SLA outcomes (contract 8.2, 8.3) are folds
like the others; the meta row also keeps the SLA gauges a ticket state adds
into and takes out of (``sla_pending`` like ``open``, and the multiset of
pending due instants behind ``cx_sla_next_due_seconds``).

Observations placed in the future (sources' clocks run ahead by up to five
minutes) wait in their bucket's ``future`` list until ``now`` reaches them.

In memory, a bucket that is unlikely to change soon (not the newest of its
window, nothing waiting in ``future``) is kept as its row's bytes, the very
object the table holds, and decoded again when something needs it (a late
observation, expiry, a snapshot of a bucket leaving its window). Decoded, a
bucket costs about ten times its row.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from streams.domain.encoding import dumps
from streams.domain.model import (
    DURATION_BUCKETS_S,
    SLA_TARGETS,
    SUMMARY_QUANTILES,
    US_PER_S,
    CountersSnapshot,
    DurationSummary,
    HistogramSnapshot,
    Observation,
    WindowSnapshot,
    WindowSpec,
    sla_due_of,
    sla_outcome_of,
    sla_pending_of,
)
from streams.domain.quantiles import Sketch
from streams.errors import StateFormatError

#: Versions of all states (``DimsState.version``): never repeated in a process.
_VERSIONS = itertools.count()

_HIST_BOUNDS_US = [int(b * US_PER_S) for b in DURATION_BUCKETS_S]

#: Version of the row codec. Rows of any other version are refused with a
#: clear error rather than misread.
FORMAT = 3
META_ROW = b"m"

# Layout of a bucket's integer vector (counts and exact sums).
_NPS = 0  # promoter, passive, detractor: 0..2
_CSAT = 3  # scores 1..5: 3..7
_CES_N, _CES_SUM, _CES_SQ = 8, 9, 10
_FCR_FALSE, _FCR_TRUE = 11, 12
_FRT_N, _FRT_SUM = 13, 14
_RES_N, _RES_SUM = 15, 16
_FRTB_N, _FRTB_SUM = 17, 18  # business time
_RESB_N, _RESB_SUM = 19, 20
_SLA = 21  # + sla_outcome_code: first_reply breached, met; resolution breached, met
_VEC_LEN = 25
#: Kinds that move a gauge in the meta row (never a window, never counted).
_GAUGES = frozenset({"open", "sla_pending", "sla_due"})
#: Pending due instants kept per target and key: the earliest ones (past
#: ones are dropped as the clock passes them).
MAX_DUES = 4_096

Position = tuple[int, int]  # (offset, index) on one route partition
Future = tuple[str, int, int, int]  # kind, placed_us, value, sign


#: Bucket starts are multiples of their window's bucket width, the same for
#: every key: one shared int object each instead of one per key and bucket
#: (about 6 MB of a 1,000-key worker). Only an optimisation, so the cache is
#: emptied when it reaches its bound (new starts come at about 1,500 a day).
_STARTS: dict[int, int] = {}
_STARTS_MAX = 65_536


def _shared(start: int) -> int:
    found = _STARTS.get(start)
    if found is None:
        if len(_STARTS) >= _STARTS_MAX:
            _STARTS.clear()
        found = _STARTS[start] = start
    return found


def obs_id(partition: int, offset: int, index: int) -> str:
    """The id of the index-th observation produced by route record (partition, offset)."""
    return f"{partition}:{offset}:{index}"


def parse_obs_id(text: str) -> tuple[int, Position]:
    partition, offset, index = text.split(":")
    return int(partition), (int(offset), int(index))


def nps_category(score: int) -> str:
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


class _Agg:
    """What a set of buckets holds: the integer vector and two sketches."""

    __slots__ = ("frt", "frtb", "res", "resb", "vec")

    def __init__(self) -> None:
        self.vec = [0] * _VEC_LEN
        self.frt = Sketch()
        self.res = Sketch()
        self.frtb = Sketch()
        self.resb = Sketch()

    def copy(self) -> _Agg:
        out = _Agg()
        out.vec = list(self.vec)
        out.frt = self.frt.copy()
        out.res = self.res.copy()
        out.frtb = self.frtb.copy()
        out.resb = self.resb.copy()
        return out

    def merge(self, other: _Agg, sign: int = 1) -> None:
        vec = self.vec
        for i, n in enumerate(other.vec):
            vec[i] += sign * n
        for name in _SKETCHES:
            mine, theirs = getattr(self, name), getattr(other, name)
            if sign > 0:
                mine.merge(theirs)
            else:
                mine.subtract(theirs)


_SKETCHES = ("frt", "res", "frtb", "resb")


class _Bucket(_Agg):
    """Everything observed in one time bucket of one window, plus the row's
    own replay marks and the observations waiting for their time."""

    __slots__ = ("future", "hwm")

    def __init__(self) -> None:
        super().__init__()
        self.hwm: dict[int, Position] = {}
        self.future: list[Future] = []


# -- folds: each kind's effect on a bucket and its window's running total ----
# A fold changes the bucket and applies the very same change to the total,
# including the floors at zero (a retraction of something never counted
# changes nothing), so the total is always the sum of the buckets.

Fold = Callable[[_Agg, _Agg, int, int], None]


def _bump(b: _Agg, t: _Agg, i: int, sign: int) -> None:
    if b.vec[i] + sign >= 0:
        b.vec[i] += sign
        t.vec[i] += sign


def _fold_nps(b: _Agg, t: _Agg, value: int, sign: int) -> None:
    _bump(b, t, _NPS + (0 if value >= 9 else 1 if value >= 7 else 2), sign)


def _fold_csat(b: _Agg, t: _Agg, value: int, sign: int) -> None:
    if 1 <= value <= 5:
        _bump(b, t, _CSAT + value - 1, sign)


def _fold_ces(b: _Agg, t: _Agg, value: int, sign: int) -> None:
    if sign < 0 and b.vec[_CES_N] == 0:
        return
    step = 1 if sign > 0 else -1
    for agg in (b, t):
        agg.vec[_CES_N] += step
        agg.vec[_CES_SUM] += step * value
        agg.vec[_CES_SQ] += step * value * value


def _fold_fcr(b: _Agg, t: _Agg, value: int, sign: int) -> None:
    _bump(b, t, _FCR_TRUE if value == 1 else _FCR_FALSE, sign)


def _durations(n_i: int, sum_i: int, sketch: str) -> Fold:
    def fold(b: _Agg, t: _Agg, value: int, sign: int) -> None:
        if sign > 0:
            for agg in (b, t):
                agg.vec[n_i] += 1
                agg.vec[sum_i] += value
                getattr(agg, sketch).add(value)
        elif b.vec[n_i] > 0:
            removed = getattr(b, sketch).remove(value)
            for agg in (b, t):
                agg.vec[n_i] -= 1
                agg.vec[sum_i] -= value
            if removed:
                getattr(t, sketch).remove(value, removed)

    return fold


def _fold_sla(b: _Agg, t: _Agg, value: int, sign: int) -> None:
    if 0 <= value < 4:
        _bump(b, t, _SLA + value, sign)


FOLDS: dict[str, Fold] = {
    "nps": _fold_nps,
    "csat": _fold_csat,
    "ces": _fold_ces,
    "fcr": _fold_fcr,
    "first_response": _durations(_FRT_N, _FRT_SUM, "frt"),
    "resolution": _durations(_RES_N, _RES_SUM, "res"),
    "first_response_business": _durations(_FRTB_N, _FRTB_SUM, "frtb"),
    "resolution_business": _durations(_RESB_N, _RESB_SUM, "resb"),
    "sla_outcome": _fold_sla,
}


class _Histogram:
    __slots__ = ("buckets", "sum_us")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_HIST_BOUNDS_US) + 1)
        self.sum_us = 0

    def observe(self, value_us: int) -> None:
        # le semantics: a value equal to a bound belongs to that bound's bucket.
        self.buckets[bisect.bisect_left(_HIST_BOUNDS_US, value_us)] += 1
        self.sum_us += value_us


class _Window:
    """One window's buckets and their running total."""

    __slots__ = ("buckets", "spec", "total", "width")

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.width = spec.us // 60
        # A bucket decoded, or its row's bytes (see the module docstring).
        self.buckets: dict[int, _Bucket | bytes] = {}
        self.total = _Agg()

    def decoded(self, start: int) -> _Bucket:
        """The bucket at ``start`` (which must exist), decoded and kept
        decoded until the next ``take_changes``."""
        stored = self.buckets[start]
        if isinstance(stored, bytes):
            stored = self.buckets[start] = _bucket_of(_decode(b"bucket", stored))
        return stored

    def bucket(self, start: int) -> _Bucket | None:
        """``decoded(start)``, or None when there is no bucket there."""
        return self.decoded(start) if start in self.buckets else None

    def outside(self, start: int, now_us: int) -> bool:
        """A bucket wholly before the window's old edge (it only slides on)."""
        return start <= self.last_outside(now_us)

    def last_outside(self, now_us: int) -> int:
        """The latest bucket start that is ``outside`` at ``now_us``: buckets
        ``[start, start + width)`` ending at or before ``now_us - W``."""
        return now_us - self.spec.us - self.width


class DimsState:
    """Everything one dims key (one ``(channel, team)``) keeps."""

    def __init__(self, dims: tuple[str, ...], windows: Sequence[WindowSpec]) -> None:
        self.dims = tuple(dims)
        self.specs = tuple(windows)
        self._win = {w.name: _Window(w) for w in self.specs}
        # Counters (never rewound), in the meta row.
        self.nps: dict[str, int] = {}
        self.csat: dict[int, int] = {}
        self.ces: dict[int, int] = {}
        self.created: dict[str, int] = {}
        self.resolved: dict[tuple[str, bool], int] = {}
        self.reopened: dict[str, int] = {}
        self.open: dict[str, int] = {}
        self.frt_hist: dict[str, _Histogram] = {}
        self.res_hist: dict[str, _Histogram] = {}
        self.frtb_hist: dict[str, _Histogram] = {}
        self.resb_hist: dict[str, _Histogram] = {}
        self.sla_breaches: dict[tuple[str, str], int] = {}  # (priority, target) -> total
        self.sla_pending: dict[tuple[str, str, str], int] = {}  # (priority, target, state)
        self.sla_dues: dict[str, dict[int, int]] = {}  # target -> due_us -> tickets
        self.meta_hwm: dict[int, Position] = {}
        self._partition = -1
        self._source_offset = -1
        self._alerts: dict[str, Any] = {}
        self._sla_alerts: dict[str, Any] = {}
        # In memory only: the highest position seen from each route partition
        # (what ``apply`` reports), and the rows to write.
        self._seen: dict[int, Position] = {}
        self._dirty_meta = False
        self._dirty: set[tuple[str, int]] = set()
        self._deleted: set[tuple[str, int]] = set()
        self._version = next(_VERSIONS)
        self._snap: tuple[int, int, int, list[WindowSnapshot]] | None = None

    @classmethod
    def new(cls, dims: tuple[str, ...], windows: Sequence[WindowSpec]) -> DimsState:
        state = cls(dims, windows)
        state._dirty_meta = True
        return state

    # -- pipeline bookkeeping, persisted in the meta row ----------------------

    @property
    def partition(self) -> int:
        return self._partition

    @partition.setter
    def partition(self, value: int) -> None:
        if value != self._partition:
            self._partition = value
            self._dirty_meta = True

    @property
    def source_offset(self) -> int:
        return self._source_offset

    @source_offset.setter
    def source_offset(self, value: int) -> None:
        if value != self._source_offset:
            self._source_offset = value
            self._dirty_meta = True

    @property
    def alerts(self) -> dict[str, Any]:
        """The alert book (``AlertBook.to_dict()``), persisted in the meta row."""
        return self._alerts

    @alerts.setter
    def alerts(self, value: dict[str, Any]) -> None:
        if value != self._alerts:
            self._alerts = value
            self._dirty_meta = True

    @property
    def sla_alerts(self) -> dict[str, Any]:
        """The CxSlaAtRisk book (``sla_alerts``), persisted in the meta row."""
        return self._sla_alerts

    @sla_alerts.setter
    def sla_alerts(self, value: dict[str, Any]) -> None:
        if value != self._sla_alerts:
            self._sla_alerts = value
            self._dirty_meta = True

    # -- applying ------------------------------------------------------------

    def apply(self, obs: Observation, now_us: int) -> bool:
        """Apply one observation at processing time ``now_us``; False if it was
        already applied (a replay), in which case nothing changes. (An
        observation that changes no row at all, e.g. one outside every
        window, leaves no trace in the rows: after a reload, its replay is
        reported as new, and still changes nothing.)"""
        partition, position = parse_obs_id(obs.obs_id)
        fresh = position > self._seen.get(partition, (-1, -1))
        if fresh:
            self._seen[partition] = position
        changed = False
        if (obs.counted or obs.kind in _GAUGES) and position > self.meta_hwm.get(
            partition, (-1, -1)
        ):
            self.meta_hwm[partition] = position
            self._dirty_meta = changed = True
            if obs.counted:
                self._count(obs)
            if obs.kind == "open":
                self.open[obs.priority] = self.open.get(obs.priority, 0) + obs.value
            elif obs.kind == "sla_pending":
                target, pstate = sla_pending_of(obs.value)
                key = (obs.priority, target, pstate)
                self.sla_pending[key] = self.sla_pending.get(key, 0) + obs.sign
            elif obs.kind == "sla_due":
                self._due(obs.value, obs.sign)
        fold = FOLDS.get(obs.kind)
        if fold is not None:
            for win in self._win.values():
                changed |= self._place(win, fold, obs, partition, position, now_us)
        if changed:
            self._version = next(_VERSIONS)
        return fresh or changed

    def _place(
        self,
        win: _Window,
        fold: Fold,
        obs: Observation,
        partition: int,
        position: Position,
        now_us: int,
    ) -> bool:
        placed = obs.placed_us
        start = placed - placed % win.width
        if win.outside(start, now_us):
            return False  # already outside this window, and it only slides on
        stored = win.buckets.get(start)
        bucket = win.bucket(start)
        if bucket is None:
            if obs.sign < 0:
                return False  # nothing to retract
            bucket = win.buckets[_shared(start)] = _Bucket()
            self._deleted.discard((win.spec.name, start))
        elif position <= bucket.hwm.get(partition, (-1, -1)):
            if isinstance(stored, bytes):
                win.buckets[start] = stored  # unchanged: back to its bytes
            return False  # this row has it already
        bucket.hwm[partition] = position
        self._dirty.add((win.spec.name, start))
        if bucket.future:
            _materialise(bucket, win.total, now_us)
        if placed > now_us:
            bucket.future.append((obs.kind, placed, obs.value, obs.sign))
        else:
            fold(bucket, win.total, obs.value, obs.sign)
        return True

    def _due(self, code: int, sign: int) -> None:
        target, due_us = sla_due_of(code)
        dues = self.sla_dues.setdefault(target, {})
        if sign < 0:
            n = dues.get(due_us, 0)
            if n > 1:
                dues[due_us] = n - 1
            elif n == 1:
                del dues[due_us]
            return  # absent: already passed (dropped) or beyond the bound
        if len(dues) >= MAX_DUES:
            latest = max(dues)
            if due_us >= latest:
                return
            del dues[latest]
        dues[due_us] = dues.get(due_us, 0) + 1

    def sla_next_due(self, now_us: int) -> dict[str, int]:
        """target -> the earliest pending due instant not yet passed at ``now_us``."""
        out = {}
        for target, dues in self.sla_dues.items():
            future = [d for d in dues if d >= now_us]
            if future:
                out[target] = min(future)
        return out

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
        elif kind == "first_response_business":
            self.frtb_hist.setdefault(prio, _Histogram()).observe(value)
        elif kind == "resolution_business":
            self.resb_hist.setdefault(prio, _Histogram()).observe(value)
        elif kind == "sla_outcome" and obs.sign > 0:
            target, met = sla_outcome_of(value)
            if not met:
                self.sla_breaches[prio, target] = self.sla_breaches.get((prio, target), 0) + 1
        elif kind == "fcr":
            key = (prio, value == 1)
            self.resolved[key] = self.resolved.get(key, 0) + 1
        elif kind == "reopened":
            self.reopened[prio] = self.reopened.get(prio, 0) + 1

    def expire(self, now_us: int) -> None:
        """Place due future observations and drop buckets outside their
        window: memory stays bounded."""
        changed = False
        for dues in self.sla_dues.values():
            passed = [d for d in dues if d < now_us]
            for d in passed:
                del dues[d]
            if passed:
                self._dirty_meta = changed = True
        # Every key's windows are expired on each timer tick: the scans
        # below select in one pass what needs work (usually nothing); a
        # call per bucket was about half of a tick's cost (a tick over 200
        # full keys went from 23-28 ms to 10-12 ms).
        for win in self._win.values():
            buckets = win.buckets
            if not buckets:
                continue
            edge = win.last_outside(now_us)
            for start in [st for st in buckets if st <= edge]:
                win.total.merge(win.decoded(start), -1)
                del buckets[start]
                self._dirty.discard((win.spec.name, start))
                self._deleted.add((win.spec.name, start))
                changed = True
            waiting = [
                (start, stored)
                for start, stored in buckets.items()
                # as bytes, nothing waits in it
                if isinstance(stored, _Bucket) and stored.future
            ]
            for start, stored in waiting:
                if any(f[1] <= now_us for f in stored.future):
                    _materialise(stored, win.total, now_us)
                    self._dirty.add((win.spec.name, start))
                    changed = True
        if changed:
            self._version = next(_VERSIONS)

    # -- reading (no side effects but the snapshot cache) ----------------------

    @property
    def version(self) -> int:
        """Changes whenever anything published from this state changes
        (counters, gauges, windows; not the clock's passing, which ``windows``
        judges). Unique across all states of the process, so a reader may key
        a cache on it alone."""
        return self._version

    @property
    def pending(self) -> list[Future]:
        """Observations waiting for their time, in arrival order per bucket."""
        return [
            f
            for win in self._win.values()
            for b in win.buckets.values()
            if isinstance(b, _Bucket)
            for f in b.future
        ]

    @property
    def series(self) -> dict[str, dict[int, _Bucket | bytes]]:
        return {name: win.buckets for name, win in self._win.items()}

    def windows(self, now_us: int) -> list[WindowSnapshot]:
        cached = self._snap
        if cached is not None and cached[0] == self._version and cached[1] <= now_us < cached[2]:
            return cached[3]
        valid_until = 2**62
        out = []
        for win in self._win.values():
            snap, until = _window_snapshot(win, now_us)
            out.append(snap)
            valid_until = min(valid_until, until)
        self._snap = (self._version, now_us, valid_until, out)
        return out

    def counters(self, now_us: int | None = None) -> CountersSnapshot:
        """The counters; ``now_us`` gives the next due instants (else none)."""
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
            first_response_business={
                p: HistogramSnapshot(tuple(h.buckets), h.sum_us) for p, h in self.frtb_hist.items()
            },
            resolution_business={
                p: HistogramSnapshot(tuple(h.buckets), h.sum_us) for p, h in self.resb_hist.items()
            },
            sla_breaches=dict(self.sla_breaches),
            sla_pending=dict(self.sla_pending),
            sla_next_due_us={} if now_us is None else self.sla_next_due(now_us),
        )

    # -- storage: rows ---------------------------------------------------------

    def take_changes(self) -> tuple[dict[bytes, bytes], list[bytes]]:
        """Rows to write and rows to delete since the last call (row ids are
        relative to the dims key), and forget them."""
        upserts: dict[bytes, bytes] = {}
        if self._dirty_meta:
            upserts[META_ROW] = self._encode_meta()
        # The newest bucket of a window (not counting ones only waiting for
        # their time) takes this minute's observations: it stays decoded.
        touched = {name for name, _ in self._dirty}
        newest = {
            name: max(
                (st for st, b in win.buckets.items() if not (isinstance(b, _Bucket) and b.future)),
                default=0,
            )
            for name, win in self._win.items()
            if name in touched
        }
        for name, start in sorted(self._dirty):
            win = self._win[name]
            bucket = win.decoded(start)
            raw = upserts[bucket_row(name, start)] = _encode_bucket(win, start, bucket)
            if start < newest[name] and not bucket.future:
                win.buckets[start] = raw
        deletes = [bucket_row(name, start) for name, start in sorted(self._deleted)]
        self._dirty_meta = False
        self._dirty.clear()
        self._deleted.clear()
        return upserts, deletes

    def rows(self) -> dict[bytes, bytes]:
        """Every row of this state."""
        out = {META_ROW: self._encode_meta()}
        for name, win in self._win.items():
            for start, stored in sorted(win.buckets.items()):
                out[bucket_row(name, start)] = (
                    stored if isinstance(stored, bytes) else _encode_bucket(win, start, stored)
                )
        return out

    @classmethod
    def from_rows(
        cls,
        dims: tuple[str, ...],
        rows: Iterable[tuple[bytes, bytes]],
        windows: Sequence[WindowSpec],
    ) -> DimsState:
        """The state stored in ``rows``. Rows of windows no longer configured
        (or whose length changed under the same name) are dropped: that
        window starts afresh, and the next ``take_changes`` deletes them."""
        state = cls(dims, windows)
        by_seconds = {(w.name, w.seconds) for w in state.specs}
        for row_id, raw in rows:
            doc = _decode(row_id, raw)
            if row_id == META_ROW:
                state._decode_meta(doc)
                continue
            seconds, start = doc[2], doc[3]
            name = row_id.split(b"\x1f", 2)[1].decode()
            if (name, seconds) not in by_seconds:
                state._deleted.add((name, start))
                continue
            win = state._win[name]
            bucket = _bucket_of(doc)
            stored = raw if isinstance(raw, bytes) and not bucket.future else bucket
            win.buckets[_shared(start)] = stored
            win.total.merge(bucket)
            for partition, position in bucket.hwm.items():
                if position > state._seen.get(partition, (-1, -1)):
                    state._seen[partition] = position
        for win in state._win.values():
            if win.buckets:
                win.decoded(max(win.buckets))  # the newest stays decoded
        return state

    def _encode_meta(self) -> bytes:
        return dumps(
            [
                FORMAT,
                "m",
                list(self.dims),
                self._partition,
                self._source_offset,
                self._alerts,
                _flat_hwm(self.meta_hwm),
                self.nps,
                list(self.csat.items()),
                list(self.ces.items()),
                self.created,
                [[p, fc, n] for (p, fc), n in self.resolved.items()],
                self.reopened,
                self.open,
                {p: [h.buckets, h.sum_us] for p, h in self.frt_hist.items()},
                {p: [h.buckets, h.sum_us] for p, h in self.res_hist.items()},
                {p: [h.buckets, h.sum_us] for p, h in self.frtb_hist.items()},
                {p: [h.buckets, h.sum_us] for p, h in self.resb_hist.items()},
                [[p, t, n] for (p, t), n in self.sla_breaches.items()],
                [[p, t, st, n] for (p, t, st), n in self.sla_pending.items()],
                {t: sorted(d.items()) for t, d in self.sla_dues.items()},
                self._sla_alerts,
            ]
        )

    def _decode_meta(self, doc: list[Any]) -> None:
        (_, _, _dims, self._partition, self._source_offset, self._alerts, hwm) = doc[:7]
        nps, csat, ces, created, resolved, reopened, open_, frt, res = doc[7:16]
        frtb, resb, breaches, pending, dues, self._sla_alerts = doc[16:]
        self.meta_hwm = _unflat_hwm(hwm)
        for partition, position in self.meta_hwm.items():
            if position > self._seen.get(partition, (-1, -1)):
                self._seen[partition] = position
        self.nps = dict(nps)
        self.csat = {int(k): n for k, n in csat}
        self.ces = {int(k): n for k, n in ces}
        self.created = dict(created)
        self.resolved = {(p, bool(fc)): n for p, fc, n in resolved}
        self.reopened = dict(reopened)
        self.open = dict(open_)
        self.sla_breaches = {(p, t): n for p, t, n in breaches}
        self.sla_pending = {(p, t, st): n for p, t, st, n in pending}
        self.sla_dues = {t: {int(d): n for d, n in items} for t, items in dues.items()}
        for stored, target in (
            (frt, self.frt_hist),
            (res, self.res_hist),
            (frtb, self.frtb_hist),
            (resb, self.resb_hist),
        ):
            for p, (buckets, sum_us) in stored.items():
                h = _Histogram()
                h.buckets, h.sum_us = list(buckets), sum_us
                target[p] = h

    # One blob of all rows: for tests, benchmarks and tools, not the table.
    def to_bytes(self) -> bytes:
        return dumps([[k.decode(), v.decode()] for k, v in self.rows().items()])

    @classmethod
    def from_bytes(cls, data: bytes, windows: Sequence[WindowSpec]) -> DimsState:
        rows = [(k.encode(), v.encode()) for k, v in orjson.loads(data)]
        meta = dict(rows).get(META_ROW)
        dims = tuple(_decode(META_ROW, meta)[2]) if meta is not None else ()
        return cls.from_rows(dims, rows, windows)


def bucket_row(window: str, start: int) -> bytes:
    """Row id of one bucket; \\x1f cannot occur in a window name."""
    return b"b\x1f" + window.encode() + b"\x1f" + str(start).encode()


def _decode(row_id: bytes, raw: bytes) -> list[Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StateFormatError(f"state row {row_id!r} is not valid JSON: {exc}") from None
    if not isinstance(doc, list) or not doc:
        version: Any = doc.get("v") if isinstance(doc, dict) else None
    else:
        version = doc[0]
    if version != FORMAT:
        raise StateFormatError(
            f"state row {row_id!r} has format {version!r}; this cxstream reads format "
            f"{FORMAT} only (state written by another version: start with a new --app-id, "
            "or run the version that wrote it)"
        )
    return list(doc)


def _encode_bucket(win: _Window, start: int, b: _Bucket) -> bytes:
    return dumps(
        [
            FORMAT,
            "b",
            win.spec.seconds,
            start,
            b.vec,
            b.frt.to_json(),
            b.res.to_json(),
            _flat_hwm(b.hwm),
            b.future,
            b.frtb.to_json(),
            b.resb.to_json(),
        ]
    )


def _bucket_of(doc: list[Any]) -> _Bucket:
    """A bucket from its decoded row (``_encode_bucket``'s layout)."""
    _, _, _, _, vec, frt, res, hwm, future, frtb, resb = doc
    bucket = _Bucket()
    bucket.vec = list(vec)
    bucket.frt = Sketch.from_json(frt)
    bucket.res = Sketch.from_json(res)
    bucket.frtb = Sketch.from_json(frtb)
    bucket.resb = Sketch.from_json(resb)
    bucket.hwm = _unflat_hwm(hwm)
    bucket.future = [(k, p, v, s) for k, p, v, s in future]
    return bucket


def _flat_hwm(hwm: dict[int, Position]) -> list[int]:
    out: list[int] = []
    for p, (o, i) in sorted(hwm.items()):
        out += (p, o, i)
    return out


def _unflat_hwm(flat: list[int]) -> dict[int, Position]:
    return {flat[i]: (flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)}


def _materialise(bucket: _Bucket, total: _Agg, now_us: int) -> None:
    """Fold the bucket's due future observations in, in arrival order."""
    waiting: list[Future] = []
    for entry in bucket.future:
        kind, placed, value, sign = entry
        if placed <= now_us:
            FOLDS[kind](bucket, total, value, sign)
        else:
            waiting.append(entry)
    bucket.future = waiting


def _window_snapshot(win: _Window, now_us: int) -> tuple[WindowSnapshot, int]:
    """The window at ``now_us`` from its running total, and the first instant
    after which the answer may differ (a bucket leaves or enters, a future
    observation falls due)."""
    agg: _Agg | None = None
    until = 2**62
    for start, stored in list(win.buckets.items()):
        leaves = start + win.width + win.spec.us
        if win.outside(start, now_us) or start > now_us:
            bucket = win.decoded(start)
            if agg is None:
                agg = win.total.copy()
            agg.merge(bucket, -1)
            if start > now_us:
                until = min(until, start)
        else:
            until = min(until, leaves)
            if isinstance(stored, bytes):
                continue  # nothing waits in a bucket kept as bytes
            bucket = stored
        for _, placed, _, _ in bucket.future:
            if placed > now_us:
                until = min(until, placed)
        if (
            bucket.future
            and start <= now_us
            and not win.outside(start, now_us)
            and any(f[1] <= now_us for f in bucket.future)
        ):
            # Read as if the due ones were placed, without changing the bucket.
            if agg is None:
                agg = win.total.copy()
            _fold_due(bucket, agg, now_us)
    return _snapshot(win.spec.name, agg if agg is not None else win.total), until


def _fold_due(bucket: _Bucket, agg: _Agg, now_us: int) -> None:
    """Add to ``agg`` the difference the bucket's due future observations
    would make once placed."""
    scratch = bucket.copy()
    sink = _Agg()  # absorbs the folds' running-total side; agg gets the difference
    for kind, placed, value, sign in bucket.future:
        if placed <= now_us:
            FOLDS[kind](scratch, sink, value, sign)
    agg.merge(bucket, -1)
    agg.merge(scratch)


def _snapshot(name: str, agg: _Agg) -> WindowSnapshot:
    v = agg.vec
    return WindowSnapshot(
        window=name,
        nps={"promoter": v[_NPS], "passive": v[_NPS + 1], "detractor": v[_NPS + 2]},
        csat={score: v[_CSAT + score - 1] for score in range(1, 6)},
        ces_count=v[_CES_N],
        ces_sum=v[_CES_SUM],
        ces_sum_sq=v[_CES_SQ],
        fcr={True: v[_FCR_TRUE], False: v[_FCR_FALSE]},
        first_response=_summary(v[_FRT_N], v[_FRT_SUM], agg.frt),
        resolution=_summary(v[_RES_N], v[_RES_SUM], agg.res),
        first_response_business=_summary(v[_FRTB_N], v[_FRTB_SUM], agg.frtb),
        resolution_business=_summary(v[_RESB_N], v[_RESB_SUM], agg.resb),
        sla_achieved={
            target: (v[_SLA + 2 * i + 1], v[_SLA + 2 * i]) for i, target in enumerate(SLA_TARGETS)
        },
    )


def _summary(count: int, sum_us: int, sketch: Sketch) -> DurationSummary:
    if count == 0:
        return DurationSummary(0, 0, {})
    found = sketch.quantiles(SUMMARY_QUANTILES)
    quantiles = {
        q: (0.0 if found is None else est / US_PER_S)
        for q, est in zip(SUMMARY_QUANTILES, found or [0.0] * len(SUMMARY_QUANTILES), strict=True)
    }
    return DurationSummary(count, sum_us, quantiles)
