"""Rolling windows against a deliberately naive recomputation.

The naive model keeps every observation in a plain list and applies the
membership rule literally: in window W at ``now`` iff ``placed <= now`` and
the placed time's W/60 bucket ends after ``now - W``.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.model import DEFAULT_WINDOWS, Observation, WindowSpec
from streams.domain.quantiles import Sketch
from streams.domain.windows import DimsState, obs_id

S = 1_000_000
DAY = 86_400 * S
T0 = 1_800_000_000 * S
DIMS = ("chat", "billing")
KINDS = (
    "nps",
    "csat",
    "ces",
    "first_response",
    "resolution",
    "fcr",
    "first_response_business",
    "resolution_business",
    "sla_outcome",
)
VALUE_RANGE = {
    "nps": (0, 10),
    "csat": (1, 5),
    "ces": (1, 7),
    "first_response": (0, 10 * DAY),
    "resolution": (0, 10 * DAY),
    "fcr": (0, 1),
    "first_response_business": (0, 10 * DAY),
    "resolution_business": (0, 10 * DAY),
    "sla_outcome": (0, 3),  # sla_outcome_code: target x met
}


@dataclass(frozen=True)
class Op:
    kind: str
    placed_offset: int  # relative to the apply time
    value: int
    advance: int  # processing time advance before applying
    retract_of: int | None  # index of an earlier add to retract


@st.composite
def ops(draw: st.DrawFn) -> list[Op]:
    out: list[Op] = []
    n = draw(st.integers(1, 60))
    for _ in range(n):
        retracted = {o.retract_of for o in out}
        # Each add is retracted at most once, as the ticket stage does.
        adds = [i for i, o in enumerate(out) if o.retract_of is None and i not in retracted]
        if adds and draw(st.integers(0, 5)) == 0:
            target = draw(st.sampled_from(adds))
            out.append(Op("", 0, 0, draw(st.integers(0, 2 * DAY)), target))
            continue
        kind = draw(st.sampled_from(KINDS))
        lo, hi = VALUE_RANGE[kind]
        placed_offset = draw(
            st.one_of(
                st.integers(-40 * DAY, 0),  # past, up to beyond the longest window
                st.integers(-3600 * S, 0),
                st.integers(0, 300 * S),  # future, up to 5 minutes
            )
        )
        out.append(
            Op(kind, placed_offset, draw(st.integers(lo, hi)), draw(st.integers(0, DAY)), None)
        )
    return out


def member(placed: int, now: int, spec: WindowSpec) -> bool:
    width = spec.us // 60
    return placed <= now and (placed // width) * width + width > now - spec.us


def nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@settings(max_examples=100, deadline=None)
@given(ops(), st.data())
def test_windows_equal_naive_recomputation(script: list[Op], data: st.DataObject) -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    naive: list[tuple[str, int, int, int]] = []  # kind, placed, value, sign
    applied: dict[int, tuple[str, int, int]] = {}
    now = T0
    for i, op in enumerate(script):
        now += op.advance
        if op.retract_of is not None:
            kind, placed, value = applied[op.retract_of]
            sign = -1
        else:
            kind, placed, value, sign = op.kind, now + op.placed_offset, op.value, 1
            applied[i] = (kind, placed, value)
        assert state.apply(
            Observation(kind, DIMS, placed, value, obs_id(0, i, 0), sign=sign, counted=False), now
        )  # type: ignore[arg-type]
        naive.append((kind, placed, value, sign))
        if data.draw(st.booleans(), label="expire"):
            state.expire(now)
        if data.draw(st.booleans(), label="write rows"):
            state.take_changes()  # older buckets are then kept as their rows' bytes
        if data.draw(st.integers(0, 9), label="roundtrip") == 0:
            state = DimsState.from_bytes(state.to_bytes(), DEFAULT_WINDOWS)
    later = now + data.draw(st.integers(0, 31 * DAY), label="snapshot delay")
    for spec, snap in zip(DEFAULT_WINDOWS, state.windows(later), strict=True):
        inside = [(k, v, s) for k, p, v, s in naive if member(p, later, spec)]

        def net(kind: str, pred: object = None, inside: list[tuple[str, int, int]] = inside) -> int:
            return sum(s for k, v, s in inside if k == kind and (pred is None or pred(v)))  # type: ignore[operator]

        assert snap.nps["promoter"] == net("nps", lambda v: v >= 9)
        assert snap.nps["passive"] == net("nps", lambda v: 7 <= v <= 8)
        assert snap.nps["detractor"] == net("nps", lambda v: v <= 6)
        for score in range(1, 6):
            assert snap.csat[score] == net("csat", lambda v, s=score: v == s)
        assert snap.ces_count == net("ces")
        assert snap.ces_sum == sum(s * v for k, v, s in inside if k == "ces")
        assert snap.fcr[True] == net("fcr", lambda v: v == 1)
        assert snap.fcr[False] == net("fcr", lambda v: v == 0)
        achieved = snap.sla_achieved or {}
        for code, (target, met) in enumerate(
            [
                ("first_reply", False),
                ("first_reply", True),
                ("resolution", False),
                ("resolution", True),
            ]
        ):
            assert achieved[target][0 if met else 1] == net("sla_outcome", lambda v, c=code: v == c)
        assert snap.first_response_business is not None and snap.resolution_business is not None
        for kind, summary in (
            ("first_response", snap.first_response),
            ("resolution", snap.resolution),
            ("first_response_business", snap.first_response_business),
            ("resolution_business", snap.resolution_business),
        ):
            multiset: Counter[int] = Counter()
            for k, v, s in inside:
                if k == kind:
                    multiset[v] += s
            values = list(multiset.elements())
            assert summary.count == len(values)
            assert summary.sum_us == sum(values)
            for q, est in summary.quantiles.items():
                exact = nearest_rank(values, q) / S
                assert abs(est - exact) <= 0.02 * exact + 1e-9, (kind, q, est, exact)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 10**13), min_size=1, max_size=300),
    st.sampled_from([0.01, 0.5, 0.9, 0.99, 1.0]),
)
def test_sketch_quantile_within_two_percent(values: list[int], q: float) -> None:
    sketch = Sketch()
    for v in values:
        sketch.add(v)
    est = sketch.quantile(q)
    exact = nearest_rank(values, q)
    assert est is not None and abs(est - exact) <= 0.02 * exact


@given(st.lists(st.integers(0, 10**9), max_size=50), st.lists(st.integers(0, 10**9), max_size=50))
def test_sketch_add_remove_and_merge(a: list[int], b: list[int]) -> None:
    sa, sb, both = Sketch(), Sketch(), Sketch()
    for v in a:
        sa.add(v)
        both.add(v)
    for v in b:
        sb.add(v)
        both.add(v)
    merged = Sketch.merged([sa, sb])
    assert merged.to_json() == both.to_json()
    for v in b:
        both.remove(v)
    assert both.to_json() == sa.to_json()
    assert Sketch.from_json(sa.to_json()).to_json() == sa.to_json()


def test_counters_and_replays() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    fr = Observation("first_response", DIMS, T0, 90 * S, obs_id(3, 10, 0), priority="high")
    assert state.apply(fr, T0)
    assert not state.apply(fr, T0)  # the same route position again: a replay
    assert not state.apply(Observation("nps", DIMS, T0, 10, obs_id(3, 9, 5)), T0)  # older position
    assert state.apply(Observation("nps", DIMS, T0, 10, obs_id(4, 0, 0)), T0)  # another partition
    hist = state.counters().first_response["high"]
    assert hist.count == 1 and hist.sum_us == 90 * S
    assert hist.buckets[1] == 1  # 60 < 90 <= 300 s
    assert state.counters().nps == {"promoter": 1}
    # Retractions correct windows but never rewind counters.
    state.apply(
        Observation("first_response", DIMS, T0, 90 * S, obs_id(4, 1, 0), "high", -1, False), T0
    )
    assert state.windows(T0)[0].first_response.count == 0
    assert state.counters().first_response["high"].count == 1


def test_future_observation_waits_until_its_time() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    state.apply(Observation("nps", DIMS, T0 + 120 * S, 0, obs_id(0, 0, 0)), T0)
    assert state.windows(T0)[0].nps_responses == 0
    assert state.windows(T0 + 120 * S)[0].nps_responses == 1
    state.expire(T0 + 200 * S)
    assert state.pending == []
    assert state.windows(T0 + 200 * S)[0].nps_score == -100.0


def test_memory_is_bounded_by_buckets_not_events() -> None:
    state = DimsState.new(DIMS, DEFAULT_WINDOWS)
    now = T0
    for i in range(20_000):
        now += 130 * S  # 30 days in all
        state.apply(
            Observation("first_response", DIMS, now, (i % 5000 + 30) * S, obs_id(0, i, 0)), now
        )
        if i % 500 == 0:
            state.expire(now)
    state.expire(now)
    assert all(len(b) <= 61 for b in state.series.values())
    assert len(state.to_bytes()) < 400_000
