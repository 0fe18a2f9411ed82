"""A scripted mixed scenario and an independent, deliberately naive calculator.

The calculator knows nothing of cxstream's code: it reads the event list and
applies the contract's definitions literally. Integration tests compare it
with what real workers publish.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tests.support import utc

CHANNELS = ("email", "chat", "phone")
TEAMS = ("billing", "support")
WINDOWS = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}


@dataclass
class Scenario:
    now_s: float
    tickets: list[dict[str, Any]] = field(default_factory=list)  # in send order
    surveys: list[dict[str, Any]] = field(default_factory=list)  # in send order


def build(now_s: float, n_tickets: int = 300, seed: int = 11) -> Scenario:
    """Tickets with bots, customer replies, reopens, clock skew; duplicates and
    out-of-order `ticket.created`; linked and unlinked surveys, some old
    (3 days: only in 7d/30d) and some late (40 days: counters only), each
    late one sent twice."""
    rng = random.Random(seed)
    sc = Scenario(now_s=now_s)
    seq = 0

    def eid() -> str:
        nonlocal seq
        seq += 1
        return f"ev-{seed}-{seq}"

    for i in range(n_tickets):
        tid = f"tk-{seed}-{i}"
        base = now_s - rng.uniform(1500, 2400)  # within the last hour, stories end in the past
        if i % 10 == 0:
            base = now_s - 3 * 86400 - rng.uniform(0, 3000)  # old: 7d and 30d only
        created: dict[str, Any] = {
            "event_id": eid(),
            "type": "ticket.created",
            "occurred_at": utc(base),
            "ticket_id": tid,
            "channel": rng.choice(CHANNELS).upper() + "  ",
            "team": "  " + rng.choice(TEAMS),
        }
        if rng.random() < 0.7:
            created["priority"] = rng.choice(["low", "normal", "high", "urgent"])
        story: list[dict[str, Any]] = []
        t = base
        if rng.random() < 0.5:
            story.append(_reply(eid(), tid, "bot", t + rng.uniform(1, 30)))
        if rng.random() < 0.15:  # clock skew: the agent's clock is behind
            story.append(_reply(eid(), tid, "agent", base - rng.uniform(1, 60)))
        else:
            t += rng.uniform(30, 400)
            story.append(_reply(eid(), tid, "agent", t))
        if rng.random() < 0.3:
            t += rng.uniform(10, 100)
            story.append(_reply(eid(), tid, "customer", t))
        if rng.random() < 0.85:
            t += rng.uniform(10, 300)
            resolved_at = t
            story.append(
                {
                    "event_id": eid(),
                    "type": "ticket.resolved",
                    "occurred_at": utc(t),
                    "ticket_id": tid,
                }
            )
            if rng.random() < 0.2:  # a customer writes after the resolution: FCR stays
                story.append(_reply(eid(), tid, "customer", resolved_at + rng.uniform(1, 50)))
            if rng.random() < 0.15:
                t += rng.uniform(10, 200)
                story.append(
                    {
                        "event_id": eid(),
                        "type": "ticket.reopened",
                        "occurred_at": utc(t),
                        "ticket_id": tid,
                    }
                )
                if rng.random() < 0.5:
                    t += rng.uniform(10, 200)
                    story.append(
                        {
                            "event_id": eid(),
                            "type": "ticket.resolved",
                            "occurred_at": utc(t),
                            "ticket_id": tid,
                        }
                    )
        # Out of order: for some tickets ticket.created arrives last.
        events = [*story, created] if rng.random() < 0.1 else [created, *story]
        # Duplicates: the same event (same event_id) sent again.
        for ev in list(events):
            if rng.random() < 0.08:
                events.append(dict(ev))
        sc.tickets.extend(events)

        if rng.random() < 0.6:
            kind = rng.choice(["survey.nps", "survey.csat", "survey.ces"])
            lo, hi = {"survey.nps": (0, 10), "survey.csat": (1, 5), "survey.ces": (1, 7)}[kind]
            survey: dict[str, Any] = {
                "event_id": eid(),
                "type": kind,
                "occurred_at": utc(t + rng.uniform(1, 60)),
                "score": rng.randint(lo, hi),
                "ticket_id": tid,
            }
            if rng.random() < 0.2:
                survey["team"] = rng.choice(TEAMS)  # own value beats the inherited one
            sc.surveys.append(survey)
            if rng.random() < 0.1:
                sc.surveys.append(dict(survey))

    for _ in range(n_tickets // 2):  # unlinked surveys with their own dims
        kind = rng.choice(["survey.nps", "survey.csat", "survey.ces"])
        lo, hi = {"survey.nps": (0, 10), "survey.csat": (1, 5), "survey.ces": (1, 7)}[kind]
        age = rng.choice([rng.uniform(60, 2400), 3 * 86400.0, 40 * 86400.0])
        survey = {
            "event_id": eid(),
            "type": kind,
            "occurred_at": utc(now_s - age),
            "score": rng.randint(lo, hi),
            "channel": rng.choice(CHANNELS),
        }
        sc.surveys.append(survey)
        if age == 40 * 86400.0:
            # A duplicate of a late event has no effect, not even on
            # cx_events_late_total (no rng draw: the sequence stays the same).
            sc.surveys.append(dict(survey))
    return sc


def _reply(event_id: str, tid: str, author: str, at: float) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "ticket.replied",
        "occurred_at": utc(at),
        "ticket_id": tid,
        "author": author,
    }


def _ts(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _norm(value: Any) -> str:
    return "unknown" if value is None else str(value).strip().lower()


@dataclass
class Expected:
    counters: dict[tuple[Any, ...], float]
    windows: dict[tuple[Any, ...], float]  # (metric, window, channel, team, extra...) -> value
    durations: dict[
        tuple[str, str, str, str], list[float]
    ]  # (kind, window, channel, team) -> values
    late_surveys: int


def expected(sc: Scenario, scrape_now_s: float) -> Expected:
    """The contract's definitions applied literally to the scenario."""
    counters: dict[tuple[Any, ...], float] = defaultdict(float)
    windows: dict[tuple[Any, ...], float] = defaultdict(float)
    durations: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)

    seen: set[str] = set()
    by_ticket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in sc.tickets:
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        by_ticket[ev["ticket_id"]].append(ev)

    def in_window(placed: float, w: str) -> bool:
        # The published windows quantise the old edge to W/60 buckets; the
        # scenario keeps every observation well away from any edge.
        return scrape_now_s - WINDOWS[w] < placed <= scrape_now_s

    ticket_dims: dict[str, tuple[str, str]] = {}
    for tid, evs in by_ticket.items():
        created = next(e for e in evs if e["type"] == "ticket.created")
        dims = (_norm(created.get("channel")), _norm(created.get("team")))
        ticket_dims[tid] = dims
        prio = created.get("priority", "normal")
        c0 = _ts(created["occurred_at"])
        counters[("created", *dims, prio)] += 1
        agent = sorted(
            _ts(e["occurred_at"])
            for e in evs
            if e["type"] == "ticket.replied" and e["author"] == "agent"
        )
        customer = [
            _ts(e["occurred_at"])
            for e in evs
            if e["type"] == "ticket.replied" and e["author"] == "customer"
        ]
        resolves = sorted(_ts(e["occurred_at"]) for e in evs if e["type"] == "ticket.resolved")
        reopens = sorted(_ts(e["occurred_at"]) for e in evs if e["type"] == "ticket.reopened")
        if agent:
            frt = max(0.0, agent[0] - c0)
            counters[("frt_count", *dims, prio)] += 1
            counters[("frt_sum", *dims, prio)] += frt
            for w in WINDOWS:
                if in_window(agent[0], w):
                    durations[("frt", w, *dims)].append(frt)
        if resolves:
            r = resolves[0]
            res = max(0.0, r - c0)
            counters[("res_count", *dims, prio)] += 1
            counters[("res_sum", *dims, prio)] += res
            first_contact_at_resolution = not any(c < r for c in customer)
            counters[("resolved", *dims, prio, first_contact_at_resolution)] += 1
            final_fc = first_contact_at_resolution and not any(x > r for x in reopens)
            for w in WINDOWS:
                if in_window(r, w):
                    durations[("res", w, *dims)].append(res)
                    windows[("fcr", w, *dims, final_fc)] += 1
            counters[("reopened", *dims, prio)] += sum(1 for x in reopens if x > r)
        status = sorted(
            [(c0, "created")]
            + [
                (_ts(e["occurred_at"]), e["type"])
                for e in evs
                if e["type"] in ("ticket.resolved", "ticket.reopened")
            ]
        )
        counters[("open", *dims, prio)] += 1 if status[-1][1] != "ticket.resolved" else 0

    late = 0
    seen_s: set[str] = set()
    for s in sc.surveys:
        if s["event_id"] in seen_s:
            continue
        seen_s.add(s["event_id"])
        inherited = ticket_dims.get(s.get("ticket_id", ""), ("unknown", "unknown"))
        dims = (
            _norm(s["channel"]) if "channel" in s else inherited[0],
            _norm(s["team"]) if "team" in s else inherited[1],
        )
        placed = _ts(s["occurred_at"])
        if placed <= scrape_now_s - WINDOWS["30d"]:
            late += 1
        kind = s["type"].split(".")[1]
        score = s["score"]
        if kind == "nps":
            cat = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
            counters[("nps", *dims, cat)] += 1
        else:
            counters[(kind, *dims, str(score))] += 1
        for w in WINDOWS:
            if in_window(placed, w):
                if kind == "nps":
                    windows[("nps", w, *dims, cat)] += 1
                elif kind == "csat":
                    windows[("csat", w, *dims, str(score))] += 1
                else:
                    windows[("ces_count", w, *dims)] += 1
                    windows[("ces_sum", w, *dims)] += score
    return Expected(dict(counters), dict(windows), dict(durations), late)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]
