"""SLA targets: due instants, transitions under any arrival order, the
clock-judged breach corrected by a delayed reply, pending classification,
and the versioned codec."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.configfile import FieldError
from streams.domain.schedules import ALWAYS_OPEN, Schedule, business_us, parse_hours
from streams.domain.sla import (
    SlaOutcome,
    SlaPolicy,
    SlaState,
    SlaStateError,
    TargetPolicy,
    classify,
    next_due,
    on_agent_reply,
    on_resolved,
    on_tick,
    open_targets,
    parse_target,
)

S = 1_000_000
MIN = 60 * S
H = 3600 * S
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def us(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


OFFICE = Schedule("office", "America/New_York", parse_hours("mon-fri 09:00-17:00"))
POLICY = SlaPolicy(
    {
        "urgent": {
            "first_reply": parse_target("30m business"),
            "resolution": parse_target("8h business"),
        },
        "normal": {"first_reply": parse_target("4h calendar")},
    }
)


def test_due_instants_in_business_and_calendar_time() -> None:
    created = us("2025-03-07T16:50:00-05:00")  # Friday, 10 business minutes left
    state = open_targets(POLICY, OFFICE, "urgent", created)
    fr, res = state.targets["first_reply"], state.targets["resolution"]
    # DST starts on Sunday 9 March: Monday is -04:00.
    assert fr.due_us == us("2025-03-10T09:20:00-04:00")
    assert res.due_us == us("2025-03-10T16:50:00-04:00")
    assert fr.due_us is not None and business_us(OFFICE, created, fr.due_us) == 30 * MIN
    # at_risk once less than 25 % (7.5 min) of business time is left
    assert fr.warn_us == us("2025-03-10T09:12:30-04:00")
    normal = open_targets(POLICY, OFFICE, "normal", created).targets
    assert set(normal) == {"first_reply"} and normal["first_reply"].due_us == created + 4 * H
    assert open_targets(POLICY, OFFICE, "low", created).targets == {}


def test_pending_moves_on_track_at_risk_breached_and_next_due() -> None:
    created = us("2025-03-10T10:00:00-04:00")
    state = open_targets(POLICY, OFFICE, "urgent", created)
    due = created + 30 * MIN
    assert classify(state, created)["first_reply"] == "on_track"
    assert classify(state, due - 7 * MIN - 31 * S)["first_reply"] == "on_track"
    assert classify(state, due - 7 * MIN - 30 * S)["first_reply"] == "at_risk"
    assert classify(state, due)["first_reply"] == "at_risk"  # met if answered now
    assert classify(state, due + 1)["first_reply"] == "breached"
    resolution_due = us("2025-03-11T10:00:00-04:00")  # 7 business hours Monday, 1 Tuesday
    assert next_due(state, due) == {"first_reply": due, "resolution": resolution_due}
    assert next_due(state, due + 1) == {"resolution": resolution_due}
    replied, _ = on_agent_reply(state, due + 5)
    assert "first_reply" not in classify(replied, due + 10)


def test_reply_at_the_due_instant_is_met_one_microsecond_later_breached() -> None:
    created = us("2025-03-10T10:00:00-04:00")
    state = open_targets(POLICY, OFFICE, "urgent", created)
    due = created + 30 * MIN
    _, out = on_agent_reply(state, due)
    assert out == [SlaOutcome("first_reply", True, due)]
    late, out = on_agent_reply(state, due + 1)
    assert out == [SlaOutcome("first_reply", False, due, counted=True)]
    assert late.targets["first_reply"].status == "breached"


def test_clock_judged_breach_then_a_delayed_earlier_reply() -> None:
    """The tick breaches (counted once); a reply that occurred before the due
    instant arrives afterwards: the window is corrected to met, the counter
    is not rewound."""
    created = us("2025-03-10T10:00:00-04:00")
    state = open_targets(POLICY, OFFICE, "urgent", created)
    due = created + 30 * MIN
    state, out = on_tick(state, due + MIN)
    assert out == [SlaOutcome("first_reply", False, due, counted=True)]
    assert classify(state, due + MIN)["first_reply"] == "breached"
    state2, out = on_tick(state, due + 2 * MIN)
    assert out == [] and state2 == state  # judged once
    state, out = on_agent_reply(state, due - MIN)
    assert out == [
        SlaOutcome("first_reply", False, due, sign=-1),
        SlaOutcome("first_reply", True, due - MIN),
    ]
    assert state.targets["first_reply"].status == "met" and state.targets["first_reply"].counted


def test_resolution_without_a_reply_answers_the_first_reply_target() -> None:
    created = us("2025-03-10T10:00:00-04:00")
    state = open_targets(POLICY, OFFICE, "urgent", created)
    state, out = on_resolved(state, created + 10 * MIN)
    assert {(o.target, o.met) for o in out} == {("first_reply", True), ("resolution", True)}
    assert classify(state, created + 10 * H) == {}


# ---------------------------------------------------------------------------
# Any arrival order (Hypothesis)
# ---------------------------------------------------------------------------

Op = tuple[str, int]  # ("reply" | "resolved" | "tick", instant)


@st.composite
def histories(draw: st.DrawFn) -> tuple[Schedule, str, int, list[Op], int]:
    schedule = draw(st.sampled_from([OFFICE, ALWAYS_OPEN]))
    priority = draw(st.sampled_from(["urgent", "normal"]))
    created = us("2025-03-07T15:00:00-05:00") + draw(st.integers(0, 5 * 24 * 60)) * MIN
    offsets = st.integers(-10 * MIN, 4 * 24 * H)
    events = [
        (kind, created + draw(offsets))
        for kind in draw(st.lists(st.sampled_from(["reply", "resolved"]), max_size=5))
    ]
    order = draw(st.permutations(events))
    ticks = sorted(draw(st.lists(st.integers(0, 5 * 24 * H), max_size=6)))
    ops: list[Op] = []
    evs = list(order)
    tks: list[Op] = [("tick", created + t) for t in ticks]
    while evs or tks:
        take_event = draw(st.booleans()) if evs and tks else bool(evs)
        ops.append(evs.pop(0) if take_event else tks.pop(0))
    final_now = max([created + 5 * 24 * H] + [t for k, t in ops if k == "tick"])
    return schedule, priority, created, ops, final_now


def step(state: SlaState, op: Op) -> tuple[SlaState, list[SlaOutcome]]:
    kind, t = op
    if kind == "reply":
        return on_agent_reply(state, t)
    if kind == "resolved":
        return on_resolved(state, t)
    return on_tick(state, t)


def expected_outcome(evidence: list[int], due: int | None, now: int) -> tuple[str, int | None]:
    """(status, placement) straight from the contract's definition."""
    if evidence:
        first = min(evidence)
        if due is None or first <= due:
            return "met", first
        return "breached", due
    if due is not None and now > due:
        return "breached", due
    return "pending", None


@settings(max_examples=400, deadline=None)
@given(history=histories())
def test_any_arrival_order_gives_the_definition_and_counts_once(
    history: tuple[Schedule, str, int, list[Op], int],
) -> None:
    schedule, priority, created, ops, final_now = history
    state = open_targets(POLICY, schedule, priority, created)
    windows: Counter[tuple[str, bool, int]] = Counter()
    breaches: Counter[str] = Counter()
    seen_breach: set[str] = set()
    known: dict[str, list[int]] = {name: [] for name in state.targets}
    for op in [*ops, ("tick", final_now)]:
        state, out = step(state, op)
        # A replay of the same record changes nothing (at-least-once delivery).
        again, repeat = step(state, op)
        assert again == state and repeat == []
        assert SlaState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
        for o in out:
            windows[(o.target, o.met, o.placed_us)] += o.sign
            breaches[o.target] += o.counted
        kind, t = op
        for name in state.targets:
            if kind == "resolved" or (kind == "reply" and name == "first_reply"):
                known[name].append(t)
            due = state.targets[name].due_us
            ev = known[name]
            if (ev and due is not None and min(ev) > due) or (
                not ev and kind == "tick" and due is not None and t > due
            ):
                seen_breach.add(name)
    for name, ts in state.targets.items():
        resolution_evidence = [t for k, t in ops if k == "resolved"]
        evidence = resolution_evidence + (
            [t for k, t in ops if k == "reply"] if name == "first_reply" else []
        )
        status, placed = expected_outcome(evidence, ts.due_us, final_now)
        assert ts.status == status
        final = {k: v for k, v in windows.items() if k[0] == name and v != 0}
        if status == "pending":
            assert final == {}
        else:
            assert placed is not None
            assert final == {(name, status == "met", placed): 1}
        # Once per ticket and target; more only never.
        assert breaches[name] == (1 if name in seen_breach else 0)
        assert breaches[name] <= 1
        if status == "breached":
            assert breaches[name] == 1


# ---------------------------------------------------------------------------
# Codec and policy checks
# ---------------------------------------------------------------------------


def test_codec_refuses_unknown_versions() -> None:
    state = open_targets(POLICY, OFFICE, "urgent", us("2025-03-10T10:00:00-04:00"))
    doc = state.to_dict()
    assert SlaState.from_dict(doc) == state
    with pytest.raises(SlaStateError, match="version 2 is not supported"):
        SlaState.from_dict({**doc, "v": 2})
    with pytest.raises(SlaStateError, match="version None"):
        SlaState.from_dict({"t": {}})


def test_parse_target_and_policy_checks() -> None:
    assert parse_target("30m business") == TargetPolicy(30 * MIN, "business")
    assert parse_target(" 8h  calendar ") == TargetPolicy(8 * H, "calendar")
    for bad in ("30m", "30 minutes business", "30m wallclock", "0s calendar"):
        with pytest.raises(FieldError):
            parse_target(bad)
    with pytest.raises(FieldError, match="not a priority"):
        SlaPolicy({"critical": {}})
    with pytest.raises(FieldError, match="not an SLA target"):
        SlaPolicy({"high": {"next_reply": parse_target("1h calendar")}})
    with pytest.raises(ValueError, match="warning"):
        open_targets(POLICY, OFFICE, "urgent", 0, warning=1.0)
