"""The oracle against hand-computed answers, and the generator against the oracle."""

from __future__ import annotations

import orjson

from tests.faults import events, oracle
from tests.faults.events import Rec

NOW = 1_750_000_000.0


def _t(ago_s: float) -> str:
    return events.rfc3339(NOW - ago_s)


def _get(group: dict[oracle.Key, float], name: str, **labels: str) -> float | None:
    return group.get((name, frozenset(labels.items())))


def test_one_ticket_and_two_surveys_by_hand() -> None:
    docs = [
        ("tickets", {"event_id": "a", "type": "ticket.replied", "occurred_at": _t(1700),
                     "ticket_id": "T", "author": "agent"}),
        ("tickets", {"event_id": "c", "type": "ticket.created", "occurred_at": _t(1800),
                     "ticket_id": "T", "channel": " Chat ", "priority": "high"}),
        ("tickets", {"event_id": "b", "type": "ticket.replied", "occurred_at": _t(1600),
                     "ticket_id": "T", "author": "customer"}),
        ("tickets", {"event_id": "r", "type": "ticket.resolved", "occurred_at": _t(1500),
                     "ticket_id": "T"}),
        ("tickets", {"event_id": "r", "type": "ticket.resolved", "occurred_at": _t(1400),
                     "ticket_id": "T"}),  # a duplicate, different time: no effect
        ("tickets", {"event_id": "o", "type": "ticket.reopened", "occurred_at": _t(1000),
                     "ticket_id": "T"}),
        ("surveys", {"event_id": "s1", "type": "survey.nps", "occurred_at": _t(900),
                     "score": 9, "ticket_id": "T"}),  # inherits chat/unknown
        ("surveys", {"event_id": "s2", "type": "survey.nps", "occurred_at": _t(40 * 86400),
                     "score": 3, "channel": "chat"}),  # late: counters only
        ("surveys", {"event_id": "s3", "type": "survey.nps", "occurred_at": _t(-3600),
                     "score": 3}),  # future
    ]  # fmt: skip
    exp = oracle.expect([Rec(src, orjson.dumps(d), None) for src, d in docs], NOW)
    dims = {"channel": "chat", "team": "unknown"}
    assert exp.reasons == [None] * 8 + ["future_timestamp"]
    s, p = exp.state, exp.process
    assert _get(s, "cx_tickets_created_total", **dims, priority="high") == 1
    # the customer wrote before the resolution: not first contact
    assert _get(s, "cx_tickets_resolved_total", **dims, priority="high", first_contact="false") == 1
    assert _get(s, "cx_tickets_reopened_total", **dims, priority="high") == 1
    assert _get(s, "cx_tickets_open", **dims, priority="high") == 1
    assert _get(s, "cx_first_response_window_seconds_sum", window="1h", **dims) == 100.0
    assert _get(s, "cx_resolution_window_seconds_count", window="24h", **dims) == 1
    assert _get(s, "cx_fcr_window_tickets", window="1h", **dims, first_contact="false") == 1
    assert _get(s, "cx_nps_responses_total", **dims, category="promoter") == 1
    assert _get(s, "cx_nps_responses_total", **dims, category="detractor") == 1
    assert _get(s, "cx_nps_window_responses", window="30d", **dims, category="detractor") is None
    assert _get(exp.ratios, "cx_nps_score", window="1h", **dims) == 100.0
    assert _get(p, "cx_events_total", source="tickets", outcome="duplicate") == 1
    assert _get(p, "cx_events_total", source="surveys", outcome="accepted") == 2
    assert _get(p, "cx_events_late_total", source="surveys") == 1
    assert _get(p, "cx_events_invalid_total", source="surveys", reason="future_timestamp") == 1


def test_generator_labels_agree_with_the_oracle() -> None:
    log = events.build(3, NOW, tickets=150, boom=2, history=20)
    recs = log.all()
    exp = oracle.expect(recs, NOW, events.BOOM_PREFIX)
    assert [r.reason for r in recs] == exp.reasons
    reasons = {r for r in exp.reasons if r}
    assert reasons == {
        "malformed", "too_large", "unknown_type", "schema", "out_of_range",
        "future_timestamp", "processing_error",
    }  # fmt: skip
    assert exp.nps_low == {events.ALERT_DIMS}
    assert oracle.edge_violations(exp.placed_us, NOW) == 0
    # the log holds every hard case the suite promises
    notes = {r.note for r in recs}
    assert {"duplicate", "duplicate, different score", "inherits", "CxNpsLow"} <= notes
    late = _get(exp.process, "cx_events_late_total", source="tickets")
    assert late is not None and late > 0
