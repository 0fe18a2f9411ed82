"""A seeded input log for the fault suite, built on the demo's TrafficGenerator.

The log is what a test sends, in send order: realistic ticket stories and
surveys (through the generator's public ``ticket_story``), plus the hard
cases the contract defines: out-of-order ``ticket.created``, duplicates
(same ``event_id``, same or different content), late events (older than the
longest window), weeks-old history, poison records (every rejection reason
but ``processing_error``) and, when asked, records a test-only hook turns
into processing errors.

Every placed instant is kept well inside or well outside each window at the
time of the check (see ``MARGIN_S``), so the oracle needs no knowledge of how
the pipeline quantises the windows' old edge.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.traffic import TrafficGenerator, rfc3339

DAY = 86_400.0
#: Recent stories happen in [now - RECENT_OLDEST_S, now - RECENT_NEWEST_S]: a
#: check up to about 28 minutes later still sees them well inside the 1h window.
RECENT_OLDEST_S = 30 * 60.0
RECENT_NEWEST_S = 60.0
#: The event id prefix the injection hook (launcher.py) fails on.
BOOM_PREFIX = "boom-"
#: The key designed to fire CxNpsLow: only detractors, more than its minimum of 30.
ALERT_DIMS = ("chat", "escalations")


@dataclass(frozen=True)
class Rec:
    """One record to produce. ``reason`` is what the contract says must happen
    to it (None: a valid event); the oracle recomputes it independently and
    the two are checked against each other."""

    source: str  # tickets | surveys
    value: bytes
    key: bytes | None
    reason: str | None = None
    note: str = ""


@dataclass
class FaultLog:
    seed: int
    now_s: float  # when the log was built; every placed instant is relative to it
    main: list[Rec] = field(default_factory=list)  # sent mid-stream, faults happen meanwhile
    tail: list[Rec] = field(default_factory=list)  # sent after `main` settled

    def all(self) -> list[Rec]:
        return [*self.main, *self.tail]

    def count(self, part: str = "all") -> int:
        return len(self.all() if part == "all" else getattr(self, part))


def _rec(doc: dict[str, Any], note: str = "") -> Rec:
    source = "tickets" if doc["type"].startswith("ticket.") else "surveys"
    key_text = doc.get("ticket_id") or doc["event_id"]
    return Rec(source, orjson.dumps(doc), key_text.encode(), None, note)


def _story_times(story: list[dict[str, Any]]) -> tuple[float, float]:
    import datetime as dt

    ts = [dt.datetime.fromisoformat(e["occurred_at"]).timestamp() for e in story]
    return min(ts), max(ts)


def _stories(
    gen: TrafficGenerator, rng: random.Random, n: int, oldest_s: float, newest_s: float
) -> Iterator[list[dict[str, Any]]]:
    """n ticket stories whose every event lies in [oldest_s, newest_s]."""
    made = 0
    while made < n:
        start = rng.uniform(oldest_s, newest_s)
        story = gen.ticket_story(start)
        lo, hi = _story_times(story)
        if lo < oldest_s or hi > newest_s:
            continue  # a story that would straddle a window edge or the future
        made += 1
        yield story


def build(
    seed: int,
    now_s: float,
    tickets: int = 400,
    *,
    old: bool = True,
    late: bool = True,
    history: int = 0,
    poison: bool = True,
    boom: int = 0,
    alert: bool = True,
) -> FaultLog:
    """The input log for one seeded run (see the module docstring).

    ``tickets`` recent ticket stories, a tenth as many 3 days old (7d/30d
    only) when ``old``, a tenth as many 35-40 days old (late: counters only)
    when ``late``, ``history`` stories 14-27 days old (30d only), one poison
    record per variant of every reason when ``poison``, ``boom`` valid
    surveys the injection hook fails on, and the CxNpsLow key when ``alert``.
    """
    rng = random.Random(seed * 7919 + 1)
    gen = TrafficGenerator(seed=seed)
    log = FaultLog(seed=seed, now_s=now_s)
    stories: list[list[dict[str, Any]]] = []
    stories += _stories(gen, rng, tickets, now_s - RECENT_OLDEST_S, now_s - RECENT_NEWEST_S)
    if old:
        stories += _stories(gen, rng, tickets // 10, now_s - 3 * DAY - 7200, now_s - 3 * DAY)
    if late:
        stories += _stories(gen, rng, max(1, tickets // 10), now_s - 40 * DAY, now_s - 35 * DAY)
    if history:
        stories += _stories(gen, rng, history, now_s - 27 * DAY, now_s - 14 * DAY)

    # Per ticket: its own send order (ticket.created last for some: out of
    # order), duplicates right after or later in the same partition.
    per_ticket: list[list[Rec]] = []
    dimless_surveys: list[Rec] = []
    for story in stories:
        evs = [e for e in story if e["type"].startswith("ticket.")]
        surveys = [e for e in story if e["type"].startswith("survey.")]
        if rng.random() < 0.1:
            evs = [*evs[1:], evs[0]]  # out of order: ticket.created arrives last
        recs = [_rec(e) for e in evs]
        for e in evs:
            # Duplicates of late events too: a duplicate has no effect, and
            # does not count as late either.
            if rng.random() < 0.05:
                recs.append(_rec(dict(e), "duplicate"))
        for s in surveys:
            if "channel" not in s:
                # It inherits its ticket's dimensions only once the ticket's
                # ticket.created was processed: send it after `main` settled.
                dimless_surveys.append(_rec(s, "inherits"))
                continue
            recs.insert(rng.randrange(len(recs) + 1), _rec(s))  # any time in the story
            if rng.random() < 0.08:
                changed = dict(s, score=s["score"] - 1 if s["score"] > 1 else s["score"] + 1)
                recs.append(_rec(changed, "duplicate, different score"))
        per_ticket.append(recs)

    # Interleave the tickets (each keeps its own order): out of occurred order globally.
    queues = [list(reversed(r)) for r in per_ticket]
    while queues:
        i = rng.randrange(len(queues))
        log.main.append(queues[i].pop())
        if not queues[i]:
            queues.pop(i)

    extras: list[Rec] = []
    if alert:
        for i in range(40):
            doc = {
                "event_id": f"alert-{seed}-{i}",
                "type": "survey.nps",
                "occurred_at": rfc3339(rng.uniform(now_s - RECENT_OLDEST_S, now_s - 120)),
                "score": rng.randint(0, 6),
                "channel": ALERT_DIMS[0],
                "team": ALERT_DIMS[1],
            }
            extras.append(_rec(doc, "CxNpsLow"))
    if poison:
        extras += poison_records(seed, now_s)
    for i in range(boom):
        doc = {
            "event_id": f"{BOOM_PREFIX}{seed}-{i}",
            "type": "survey.csat",
            "occurred_at": rfc3339(now_s - 600),
            "score": 4,
            "channel": "web",
        }
        extras.append(Rec("surveys", orjson.dumps(doc), None, "processing_error", "injected"))
    for rec in extras:
        log.main.insert(rng.randrange(len(log.main) + 1), rec)

    log.tail += dimless_surveys
    # Duplicates after the fact: the pipeline must still know these ids
    # (after restarts too: dedup state lives in changelog-backed tables).
    sent = [r for r in log.main if r.reason is None and r.note == ""]
    recent = [r for r in sent if orjson.loads(r.value)["occurred_at"] > rfc3339(now_s - DAY)]
    again = rng.sample(recent, 20)
    if history:  # ids of weeks-old events must survive expiry sweeps too
        weeks = rfc3339(now_s - 7 * DAY)
        old_ones = [
            r
            for r in sent
            if rfc3339(now_s - 30 * DAY) < orjson.loads(r.value)["occurred_at"] < weeks
        ]
        again += rng.sample(old_ones, min(20, len(old_ones)))
    log.tail += [Rec(r.source, r.value, r.key, None, "duplicate") for r in again]
    return log


def poison_records(seed: int, now_s: float) -> list[Rec]:
    """Records every rejection reason but processing_error, in several forms."""
    at = rfc3339(now_s - 300)

    def doc(**kw: Any) -> dict[str, Any]:
        base = {"event_id": f"p-{seed}-{kw.pop('n')}", "occurred_at": at}
        base.update(kw)
        return {k: v for k, v in base.items() if v is not None}

    def rec(source: str, value: bytes | dict[str, Any], reason: str, note: str) -> Rec:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        return Rec(source, raw, None, reason, note)

    return [
        rec("tickets", b"\xff\xfe not utf-8", "malformed", "not UTF-8"),
        rec("surveys", b'{"event_id": "x", "type": ', "malformed", "truncated JSON"),
        rec("tickets", b'["a", "json", "array"]', "malformed", "not an object"),
        rec(
            "surveys",
            doc(n=1, type="survey.nps", score=3, comment="x" * 70_000),
            "too_large",
            "over 64 KiB",
        ),
        rec("tickets", doc(n=2, type="ticket.escalated", ticket_id="T-x"), "unknown_type", "type"),
        rec("tickets", doc(n=3, type="survey.nps", score=9), "unknown_type", "survey on tickets"),
        rec("surveys", doc(n=4, type="survey.nps", score="9"), "schema", "score as a string"),
        rec("tickets", doc(n=5, type="ticket.created", ticket_id=None), "schema", "no ticket_id"),
        rec(
            "tickets",
            doc(n=6, type="ticket.replied", ticket_id="T-y", author="robot"),
            "schema",
            "unknown author",
        ),
        rec(
            "surveys",
            doc(n=7, type="survey.csat", score=4, occurred_at="2024-01-01T00:00:00"),
            "schema",
            "no offset",
        ),
        rec(
            "surveys",
            doc(n=8, type="survey.ces", score=5, channel="!!bad"),
            "schema",
            "bad dimension",
        ),
        rec("surveys", doc(n=9, type="survey.nps", score=11), "out_of_range", "NPS 11"),
        rec("surveys", doc(n=10, type="survey.csat", score=0), "out_of_range", "CSAT 0"),
        rec(
            "surveys",
            doc(n=11, type="survey.ces", score=4, occurred_at=rfc3339(now_s + 3600)),
            "future_timestamp",
            "an hour ahead",
        ),
        rec(
            "tickets",
            doc(n=12, type="ticket.created", ticket_id="T-z", occurred_at=rfc3339(now_s + 7200)),
            "future_timestamp",
            "two hours ahead",
        ),
    ]
