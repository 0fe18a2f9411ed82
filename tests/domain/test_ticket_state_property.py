"""Ticket state + windows against a deliberately naive recomputation.

Random ticket logs (bots, customer replies, reopen cycles, clock skew,
duplicates, arrival in any order, linked and unlinked surveys) go through
``RouteState`` and ``DimsState`` exactly as the pipeline drives them. The
naive model reads the de-duplicated event set and applies the contract's
definitions literally.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.dimensions import DimensionCap
from streams.domain.model import (
    Observation,
    SurveyResponse,
    TicketEvent,
    WindowSpec,
)
from streams.domain.ticket_state import RouteState
from streams.domain.windows import DimsState, obs_id

S = 1_000_000
T0 = 1_800_000_000 * S
NOW = T0 + 86_400 * S  # every event lies within the last day
BIG = (WindowSpec("400d", 400 * 86_400),)  # one window that holds everything


@st.composite
def ticket_log(draw: st.DrawFn, tid: str) -> list[TicketEvent]:
    base = T0 + draw(st.integers(0, 3600)) * S
    dims = {
        "channel": draw(st.sampled_from(["chat", "email"])),
        "team": draw(st.sampled_from(["a", "b"])),
    }
    if draw(st.booleans()):
        del dims["team"]
    prio = draw(st.sampled_from([None, "low", "urgent"]))
    events = [TicketEvent(f"{tid}-c", "ticket.created", base, tid, dims, prio)]
    for j in range(draw(st.integers(0, 8))):
        # Times may precede creation (clock skew) and interleave freely.
        t = base + draw(st.integers(-600, 7200)) * S
        kind = draw(st.sampled_from(["agent", "customer", "bot", "resolved", "reopened"]))
        eid = f"{tid}-{j}"
        if kind in ("agent", "customer", "bot"):
            events.append(
                TicketEvent(eid, "ticket.replied", t, tid, {"team": "ignored"}, None, kind)
            )
        else:
            events.append(TicketEvent(eid, f"ticket.{kind}", t, tid, {}))
    if draw(st.integers(0, 6)) == 0:  # a repeated created (another event id): no effect
        events.append(
            TicketEvent(
                f"{tid}-c2", "ticket.created", base + 5 * S, tid, {"channel": "web"}, "high"
            )
        )
    return events


@st.composite
def scenario(draw: st.DrawFn) -> list[TicketEvent | SurveyResponse]:
    tickets = [draw(ticket_log(f"T{i}")) for i in range(draw(st.integers(1, 5)))]
    events: list[TicketEvent | SurveyResponse] = [e for log in tickets for e in log]
    for k in range(draw(st.integers(0, 6))):
        linked = draw(st.sampled_from([None, "T0", "T1", "T9"]))
        kind = draw(st.sampled_from(["survey.nps", "survey.csat", "survey.ces"]))
        lo, hi = {"survey.nps": (0, 10), "survey.csat": (1, 5), "survey.ces": (1, 7)}[kind]
        own = draw(st.sampled_from([{}, {"team": "z"}, {"channel": "phone", "team": "a"}]))
        t = T0 + draw(st.integers(0, 9000)) * S
        events.append(SurveyResponse(f"S{k}", kind, t, draw(st.integers(lo, hi)), own, linked))
    events = draw(st.permutations(events))  # any arrival order
    dups = draw(st.lists(st.sampled_from(events), max_size=4)) if events else []
    return [*events, *dups]


def run(
    events: list[TicketEvent | SurveyResponse],
) -> tuple[dict[tuple[str, ...], DimsState], list[str]]:
    """Drive the domain as the pipeline does (route key -> RouteState ->
    observations stamped with their position -> DimsState per dims key)."""
    cap = DimensionCap()
    routes: dict[str, RouteState] = {}
    aggs: dict[tuple[str, ...], DimsState] = {}
    statuses: list[str] = []
    for offset, ev in enumerate(events):
        tid = ev.ticket_id
        key = f"t:{tid}" if tid is not None else f"e:{ev.event_id}"
        state = routes.setdefault(key, RouteState.new())
        if isinstance(ev, SurveyResponse):
            outcome = state.apply_survey(ev, NOW, cap)
        else:
            outcome = state.apply_ticket(ev, NOW, cap)
        statuses.append(outcome.status)
        # Round-trip through bytes as the table does.
        routes[key] = RouteState.from_bytes(state.to_bytes())
        if outcome.status != "accepted":
            continue
        for index, obs in enumerate(outcome.observations):
            stamped = Observation(
                obs.kind,
                obs.dims,
                obs.placed_us,
                obs.value,
                obs_id(0, offset, index),
                obs.priority,
                obs.sign,
                obs.counted,
            )
            agg = aggs.setdefault(obs.dims, DimsState.new(obs.dims, BIG))
            assert agg.apply(stamped, NOW)
    return aggs, statuses


def naive(events: list[TicketEvent | SurveyResponse]) -> dict[str, Counter[Any]]:
    out: dict[str, Counter[Any]] = defaultdict(Counter)
    seen: set[str] = set()
    unique = []
    for ev in events:
        if ev.event_id not in seen:
            seen.add(ev.event_id)
            unique.append(ev)
    by_ticket: dict[str, list[TicketEvent]] = defaultdict(list)
    for ev in unique:
        if isinstance(ev, TicketEvent):
            by_ticket[ev.ticket_id].append(ev)
    dims_of: dict[str, tuple[str, str]] = {}
    for tid, evs in by_ticket.items():
        created = [e for e in evs if e.type == "ticket.created"]
        if not created:
            continue
        first_created = next(
            e
            for e in unique
            if isinstance(e, TicketEvent) and e.ticket_id == tid and e.type == "ticket.created"
        )
        c = first_created
        dims = (c.dims.get("channel", "unknown"), c.dims.get("team", "unknown"))
        dims_of[tid] = dims
        prio = c.priority or "normal"
        out["created"][(dims, prio)] += 1
        agent = [e.occurred_us for e in evs if e.type == "ticket.replied" and e.author == "agent"]
        customer = [
            e.occurred_us for e in evs if e.type == "ticket.replied" and e.author == "customer"
        ]
        resolves = [e.occurred_us for e in evs if e.type == "ticket.resolved"]
        reopens = [e.occurred_us for e in evs if e.type == "ticket.reopened"]
        if agent:
            out["frt"][(dims, max(0, min(agent) - c.occurred_us))] += 1
        if resolves:
            r = min(resolves)
            out["res"][(dims, max(0, r - c.occurred_us))] += 1
            fc = not any(t < r for t in customer) and not any(t > r for t in reopens)
            out["fcr"][(dims, fc)] += 1
            out["reopened"][(dims, prio)] += sum(1 for t in reopens if t > r)
        status = [(c.occurred_us, 0, c.event_id)] + [
            (e.occurred_us, 2 if e.type == "ticket.resolved" else 1, e.event_id)
            for e in evs
            if e.type in ("ticket.resolved", "ticket.reopened")
        ]
        out["open"][(dims, prio)] += 0 if max(status)[1] == 2 else 1
    # Surveys inherit a ticket's dims only if its created was processed first.
    processed_created: set[str] = set()
    for ev in unique:
        if isinstance(ev, TicketEvent):
            if ev.type == "ticket.created":
                processed_created.add(ev.ticket_id)
            continue
        inherited = (
            dims_of[ev.ticket_id] if ev.ticket_id in processed_created else ("unknown", "unknown")
        )
        dims = (ev.dims.get("channel", inherited[0]), ev.dims.get("team", inherited[1]))
        out[ev.type.split(".")[1]][(dims, ev.score)] += 1
    return out


@settings(max_examples=200, deadline=None)
@given(scenario())
def test_numbers_equal_naive_recomputation(events: list[TicketEvent | SurveyResponse]) -> None:
    aggs, statuses = run(events)
    want = naive(events)
    assert statuses.count("accepted") == len({e.event_id for e in events})

    got: dict[str, Counter[Any]] = defaultdict(Counter)
    for dims, agg in aggs.items():
        counters = agg.counters()
        for prio, n in counters.created.items():
            got["created"][(dims, prio)] += n
        for prio, n in counters.reopened.items():
            got["reopened"][(dims, prio)] += n
        for prio, n in counters.open.items():
            got["open"][(dims, prio)] += n
        # Windows hold the corrected truth; counters count each ticket once.
        snap = agg.windows(NOW)[0]
        got["fcr"][(dims, True)] += snap.fcr[True]
        got["fcr"][(dims, False)] += snap.fcr[False]
        assert sum(h.count for h in counters.first_response.values()) == snap.first_response.count
        assert sum(counters.resolved.values()) == snap.fcr_tickets
        for cat, n in counters.nps.items():
            got["nps_cat"][(dims, cat)] += n
    for kind in ("created", "reopened"):
        assert +got[kind] == +want[kind], kind
    assert +got["open"] == +want["open"]
    assert +got["fcr"] == +want["fcr"]

    # Durations: the window multiset equals the naive one exactly.
    for kind, attr in (("frt", "first_response"), ("res", "resolution")):
        naive_by_dims: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for (dims, value), n in want[kind].items():
            naive_by_dims[dims] += [value] * n
        for dims, agg in aggs.items():
            summary = getattr(agg.windows(NOW)[0], attr)
            values = naive_by_dims.pop(dims, [])
            assert summary.count == len(values) and summary.sum_us == sum(values)
            for q, est in summary.quantiles.items():
                exact = sorted(values)[max(0, math.ceil(q * len(values)) - 1)] / S
                assert abs(est - exact) <= 0.02 * exact + 1e-9
        assert not any(naive_by_dims.values())

    # Surveys: per dims and score.
    for kind in ("nps", "csat", "ces"):
        got_scores: Counter[Any] = Counter()
        for dims, agg in aggs.items():
            c = agg.counters()
            if kind == "csat":
                got_scores.update({(dims, s): n for s, n in c.csat.items()})
            elif kind == "ces":
                got_scores.update({(dims, s): n for s, n in c.ces.items()})
        if kind == "nps":
            want_cat: Counter[Any] = Counter()
            for (dims, score), n in want["nps"].items():
                cat = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
                want_cat[(dims, cat)] += n
            assert +got["nps_cat"] == +want_cat
        else:
            assert +got_scores == +want[kind], kind


def test_rules_by_example() -> None:
    cap = DimensionCap()
    s = RouteState.new()
    t = T0

    def tk(eid: str, kind: str, at: int, **kw: Any) -> TicketEvent:
        return TicketEvent(
            eid, kind, at, "T", kw.pop("dims", {}), kw.get("priority"), kw.get("author")
        )

    # Events before their created are held; bots never count.
    assert (
        s.apply_ticket(tk("r0", "ticket.replied", t + 5 * S, author="bot"), NOW, cap).observations
        == []
    )
    out = s.apply_ticket(
        tk("c", "ticket.created", t, dims={"channel": "chat"}), NOW, cap
    ).observations
    assert [o.kind for o in out] == ["ticket_created", "open"]
    out = s.apply_ticket(
        tk("r1", "ticket.replied", t + 60 * S, author="agent"), NOW, cap
    ).observations
    assert [(o.kind, o.value, o.counted) for o in out] == [("first_response", 60 * S, True)]
    # A late, earlier agent reply corrects the window, not the counter.
    out = s.apply_ticket(
        tk("r2", "ticket.replied", t + 30 * S, author="agent"), NOW, cap
    ).observations
    assert [(o.kind, o.value, o.sign, o.counted) for o in out] == [
        ("first_response", 60 * S, -1, False),
        ("first_response", 30 * S, 1, False),
    ]
    out = s.apply_ticket(tk("v", "ticket.resolved", t + 90 * S), NOW, cap).observations
    assert [(o.kind, o.value) for o in out] == [("resolution", 90 * S), ("fcr", 1), ("open", -1)]
    # A customer writing after the resolution does not undo FCR.
    assert (
        s.apply_ticket(
            tk("r3", "ticket.replied", t + 95 * S, author="customer"), NOW, cap
        ).observations
        == []
    )
    # A reopen retracts it (it stays in the denominator) and counts.
    out = s.apply_ticket(tk("o", "ticket.reopened", t + 100 * S), NOW, cap).observations
    assert [(o.kind, o.value, o.sign, o.counted) for o in out] == [
        ("fcr", 1, -1, False),
        ("fcr", 0, 1, False),
        ("reopened", 1, 1, True),
        ("open", 1, 1, False),
    ]
    assert s.apply_ticket(tk("o", "ticket.reopened", t + 100 * S), NOW, cap).status == "duplicate"
    # Negative durations (clock skew) are 0.
    s2 = RouteState.new()
    s2.apply_ticket(tk("c", "ticket.created", t), NOW, cap)
    out = s2.apply_ticket(tk("x", "ticket.resolved", t - 10 * S), NOW, cap).observations
    assert out[0].kind == "resolution" and out[0].value == 0


def test_customer_reply_at_the_resolution_instant_is_not_before_it() -> None:
    """'Before that resolution' is strict: a reply stamped with the same
    instant does not make the ticket non-first-contact."""
    cap = DimensionCap()
    s = RouteState.new()
    s.apply_ticket(TicketEvent("c", "ticket.created", T0, "T", {}), NOW, cap)
    s.apply_ticket(
        TicketEvent("r", "ticket.replied", T0 + 50 * S, "T", {}, None, "customer"), NOW, cap
    )
    out = s.apply_ticket(
        TicketEvent("v", "ticket.resolved", T0 + 50 * S, "T", {}), NOW, cap
    ).observations
    assert [(o.kind, o.value) for o in out if o.kind == "fcr"] == [("fcr", 1)]
    s2 = RouteState.new()
    s2.apply_ticket(TicketEvent("c", "ticket.created", T0, "T", {}), NOW, cap)
    s2.apply_ticket(
        TicketEvent("r", "ticket.replied", T0 + 49 * S, "T", {}, None, "customer"), NOW, cap
    )
    out = s2.apply_ticket(
        TicketEvent("v", "ticket.resolved", T0 + 50 * S, "T", {}), NOW, cap
    ).observations
    assert [(o.kind, o.value) for o in out if o.kind == "fcr"] == [("fcr", 0)]
