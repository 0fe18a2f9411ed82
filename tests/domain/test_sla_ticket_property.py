"""Business time and SLA targets through ticket states and windows, against
a naive recomputation (contract 8.2, 8.3).

The random ticket logs of ``test_ticket_state_property`` (any arrival order,
duplicates, clock skew) go through ``RouteState`` with a schedules file and
SLA policies, with timer ticks at random points between the events, then a
final tick at ``END``. The naive model reads the de-duplicated events and
computes business time minute by minute from the zone's wall clock, due
instants by walking those minutes, and outcomes from the definitions.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.domain.dimensions import DimensionCap
from streams.domain.model import Observation, SurveyResponse, TicketEvent
from streams.domain.schedules_file import parse_schedules
from streams.domain.ticket_state import RouteState
from streams.domain.windows import DimsState, obs_id
from tests.domain.test_ticket_state_property import BIG, NOW, T0, S, scenario

SCHEDULES = """
schedules:
  office:
    timezone: Europe/Berlin
    hours: ["mon-fri 09:00-09:20, 09:40-10:30, 11:00-12:00, 13:00-17:00"]
assign:
  - schedule: office
    filters: {channel: chat}
sla:
  low: {first_reply: 30m business, resolution: 2h calendar}
  urgent: {first_reply: 10m calendar, resolution: 1h business}
  normal: {first_reply: 20m business}
"""
CONFIG = parse_schedules(SCHEDULES, "sla.yaml")
BERLIN = ZoneInfo("Europe/Berlin")
# priority -> target -> (seconds, business?)
POLICY = {
    "low": {"first_reply": (1800, True), "resolution": (7200, False)},
    "urgent": {"first_reply": (600, False), "resolution": (3600, True)},
    "normal": {"first_reply": (1200, True)},
}
# The events fall on a Friday from 09:00 Berlin time: closed gaps inside.
OPEN_MINUTES = [(540, 560), (580, 630), (660, 720), (780, 1020)]
WARNING = 0.25
END = T0 + 3 * 3600 * S


def _open_minute(minute_start_s: int, office: bool) -> bool:
    if not office:
        return True
    local = dt.datetime.fromtimestamp(minute_start_s, BERLIN)
    m = local.hour * 60 + local.minute
    return local.weekday() < 5 and any(a <= m < b for a, b in OPEN_MINUTES)


def naive_business_us(start_us: int, end_us: int, office: bool) -> int:
    """Open microseconds in [start, end), minute by minute."""
    if end_us <= start_us:
        return 0
    total = 0
    m = start_us // (60 * S) * 60
    while m * S < end_us:
        lo, hi = max(start_us, m * S), min(end_us, (m + 60) * S)
        if hi > lo and _open_minute(m, office):
            total += hi - lo
        m += 60
    return total


def naive_due_us(start_us: int, amount_us: int, business: bool, office: bool) -> int:
    if not business or not office:
        return start_us + amount_us
    done, m = 0, start_us // (60 * S) * 60
    while True:
        lo, hi = max(start_us, m * S), (m + 60) * S
        if _open_minute(m, office):
            if done + (hi - lo) >= amount_us:
                return lo + amount_us - done
            done += hi - lo
        m += 60


@st.composite
def with_ticks(draw: st.DrawFn) -> list[TicketEvent | SurveyResponse | int]:
    events: list[TicketEvent | SurveyResponse | int] = list(draw(scenario()))
    for _ in range(draw(st.integers(0, 4))):
        at = T0 + draw(st.integers(0, 3 * 3600)) * S
        events.insert(draw(st.integers(0, len(events))), at)
    return events


def run(events: list[TicketEvent | SurveyResponse | int]) -> dict[tuple[str, ...], DimsState]:
    cap = DimensionCap()
    routes: dict[str, RouteState] = {}
    aggs: dict[tuple[str, ...], DimsState] = {}

    def deliver(offset: int, observations: list[Observation]) -> None:
        for index, obs in enumerate(observations):
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

    for offset, ev in enumerate([*events, END]):
        if isinstance(ev, int):  # a timer tick: every state, in key order
            out: list[Observation] = []
            for key in sorted(routes):
                out += routes[key].tick(ev)
                routes[key] = RouteState.from_bytes(routes[key].to_bytes())
            deliver(offset, out)
            continue
        tid = ev.ticket_id
        key = f"t:{tid}" if tid is not None else f"e:{ev.event_id}"
        state = routes.setdefault(key, RouteState.new())
        if isinstance(ev, SurveyResponse):
            outcome = state.apply_survey(ev, NOW, cap)
        else:
            outcome = state.apply_ticket(ev, NOW, cap, CONFIG, WARNING)
        routes[key] = RouteState.from_bytes(state.to_bytes())
        if outcome.status == "accepted":
            deliver(offset, outcome.observations)
    return aggs


def naive(events: list[TicketEvent | SurveyResponse | int]) -> dict[str, Counter[Any]]:
    out: dict[str, Counter[Any]] = defaultdict(Counter)
    ticks = [e for e in events if isinstance(e, int)] + [END]
    seen: set[str] = set()
    by_ticket: dict[str, list[TicketEvent]] = defaultdict(list)
    for ev in events:
        if isinstance(ev, TicketEvent) and ev.event_id not in seen:
            seen.add(ev.event_id)
            by_ticket[ev.ticket_id].append(ev)
    for evs in by_ticket.values():
        created = [e for e in evs if e.type == "ticket.created"]
        if not created:
            continue
        c = created[0]  # the first processed; a repeated created has no effect
        dims = (c.dims.get("channel", "unknown"), c.dims.get("team", "unknown"))
        office = dims[0] == "chat"
        prio = c.priority or "normal"
        agent = [e.occurred_us for e in evs if e.type == "ticket.replied" and e.author == "agent"]
        resolves = [e.occurred_us for e in evs if e.type == "ticket.resolved"]
        if agent:
            out["frt_b"][(dims, naive_business_us(c.occurred_us, min(agent), office))] += 1
        if resolves:
            out["res_b"][(dims, naive_business_us(c.occurred_us, min(resolves), office))] += 1
        for target, (amount, business) in POLICY.get(prio, {}).items():
            due = naive_due_us(c.occurred_us, amount * S, business, office)
            horizon = round(amount * S * WARNING)
            warn = naive_due_us(c.occurred_us, amount * S - horizon, business, office)
            evidence_list = resolves if target == "resolution" else agent + resolves
            evidence = min(evidence_list) if evidence_list else None
            if evidence is not None:
                out["met" if evidence <= due else "breached"][(dims, target)] += 1
            else:
                if any(t > due for t in ticks):
                    out["breached"][(dims, target)] += 1
                state = "breached" if due < END else "at_risk" if warn <= END else "on_track"
                out["pending"][(dims, prio, target, state)] += 1
                if due >= END:
                    best = out["next_due"].get((dims, target))
                    out["next_due"][(dims, target)] = due if best is None else min(best, due)
    return out


@settings(max_examples=150, deadline=None)
@given(with_ticks())
def test_business_time_and_sla_equal_naive_recomputation(
    events: list[TicketEvent | SurveyResponse | int],
) -> None:
    aggs = run(events)
    want = naive(events)
    got: dict[str, Counter[Any]] = defaultdict(Counter)
    for dims, agg in aggs.items():
        snap = agg.windows(NOW)[0]
        counters = agg.counters(END)
        for kind, attr in (("frt_b", "first_response_business"), ("res_b", "resolution_business")):
            summary = getattr(snap, attr)
            hist = getattr(counters, attr)
            assert summary.count == sum(h.count for h in hist.values())
            got[kind + "_n"][dims] += summary.count
            got[kind + "_sum"][dims] += summary.sum_us
        for target, (met, breached) in (snap.sla_achieved or {}).items():
            got["met"][(dims, target)] += met
            got["breached"][(dims, target)] += breached
        for (prio, target, state), n in counters.sla_pending.items():
            got["pending"][(dims, prio, target, state)] += n
        for (_, target), n in counters.sla_breaches.items():
            got["counted"][(dims, target)] += n
        for target, due in counters.sla_next_due_us.items():
            got["next_due"][(dims, target)] = due
    for kind in ("frt_b", "res_b"):
        want_n: Counter[Any] = Counter()
        want_sum: Counter[Any] = Counter()
        for (dims, value), n in want[kind].items():
            want_n[dims] += n
            want_sum[dims] += value * n
        assert +got[kind + "_n"] == +want_n, kind
        assert +got[kind + "_sum"] == +want_sum, kind
    assert +got["met"] == +want["met"]
    assert +got["breached"] == +want["breached"]
    assert +got["pending"] == +want["pending"]
    assert dict(got["next_due"]) == dict(want["next_due"])
    # The breach counter counts every window breach once; a target the clock
    # breached before its (earlier) evidence arrived stays counted: at most
    # one per met target more.
    for key in got["counted"].keys() | want["breached"].keys():
        assert want["breached"][key] <= got["counted"][key]
        assert got["counted"][key] <= want["breached"][key] + want["met"][key]
