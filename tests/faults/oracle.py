"""The offline oracle: what /metrics must say, computed from the input log alone.

Independent of cxstream's code (it imports nothing from ``streams``): the
contract's sections 2-6, written as plainly as possible. Time is an integer
number of microseconds throughout, so durations and their sums are exact.

``expect(log, now_s)`` returns three groups of ``{(sample name, labels): value}``:

- ``state``: counters and gauges kept in changelog-backed tables (they
  survive worker restarts), and every rolling-window series;
- ``process``: ``cx_events_*`` counters, which count what *this worker
  process* saw (they restart from zero with the process);
- ``ratios``: window scores (floats, compared to 1e-9).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

Key = tuple[str, frozenset[tuple[str, str]]]
US = 1_000_000
WINDOWS_S = {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}
LONGEST_S = max(WINDOWS_S.values())
MAX_BYTES = 64 * 1024
FUTURE_S = 300
TICKET_TYPES = {"ticket.created", "ticket.replied", "ticket.resolved", "ticket.reopened"}
SCALES = {"survey.nps": (0, 10), "survey.csat": (1, 5), "survey.ces": (1, 7)}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
DIMENSION = re.compile(r"^[a-z0-9][a-z0-9 _./:-]{0,63}$")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Record(Protocol):
    source: str
    value: bytes


def to_us(text: str) -> int:
    """RFC 3339 to integer microseconds (fractions past 6 digits dropped)."""
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", text)
    assert m is not None, text
    frac = (m.group(2) or ".")[1:7].ljust(6, "0")
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    return (base - EPOCH) // dt.timedelta(seconds=1) * US + int(frac)


def classify(source: str, raw: bytes, now_s: float, boom_prefix: str | None = None) -> str | None:
    """Contract section 4: the rejection reason, or None for a valid event."""
    if len(raw) > MAX_BYTES:
        return "too_large"
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "malformed"
    if not isinstance(doc, dict):
        return "malformed"
    kind = doc.get("type")
    if not isinstance(kind, str):
        return "schema"
    known = TICKET_TYPES if source == "tickets" else set(SCALES)
    if kind not in known:
        return "unknown_type"
    if not _id_ok(doc.get("event_id")):
        return "schema"
    at = doc.get("occurred_at")
    if not isinstance(at, str) or not TIMESTAMP.match(at):
        return "schema"
    for dim in ("channel", "team"):
        if dim in doc and not (
            isinstance(doc[dim], str) and DIMENSION.match(doc[dim].strip().lower())
        ):
            return "schema"
    if source == "tickets":
        if not _id_ok(doc.get("ticket_id")):
            return "schema"
        if kind == "ticket.replied" and doc.get("author") not in ("agent", "customer", "bot"):
            return "schema"
        if kind == "ticket.created" and doc.get("priority", "normal") not in (
            "low",
            "normal",
            "high",
            "urgent",
        ):
            return "schema"
    else:
        score = doc.get("score")
        if not isinstance(score, int) or isinstance(score, bool):
            return "schema"
        if "ticket_id" in doc and not _id_ok(doc["ticket_id"]):
            return "schema"
        if "comment" in doc and not (
            isinstance(doc["comment"], str) and len(doc["comment"]) <= 2000
        ):
            return "schema"
        lo, hi = SCALES[kind]
        if not lo <= score <= hi:
            return "out_of_range"
    if to_us(at) > int((now_s + FUTURE_S) * US):
        return "future_timestamp"
    if boom_prefix and doc["event_id"].startswith(boom_prefix):
        return "processing_error"
    return None


def _id_ok(value: Any) -> bool:
    return isinstance(value, str) and 1 <= len(value) <= 128


def _dim(doc: dict[str, Any], name: str) -> str | None:
    return doc[name].strip().lower() if name in doc else None


@dataclass
class Expected:
    state: dict[Key, float] = field(default_factory=dict)
    process: dict[Key, float] = field(default_factory=dict)
    ratios: dict[Key, float] = field(default_factory=dict)
    reasons: list[str | None] = field(default_factory=list)  # per record, in log order
    nps_low: set[tuple[str, str]] = field(default_factory=set)  # keys CxNpsLow must fire for
    placed_us: list[int] = field(default_factory=list)  # every window placement, for edge checks


def _k(name: str, **labels: str) -> Key:
    return (name, frozenset(labels.items()))


def expect(records: Sequence[Record], now_s: float, boom_prefix: str | None = None) -> Expected:
    out = Expected()
    now_us = int(now_s * US)
    state: dict[Key, float] = defaultdict(float)
    process: dict[Key, float] = defaultdict(float)
    seen: set[str] = set()
    tickets: dict[str, list[dict[str, Any]]] = defaultdict(list)
    surveys: list[dict[str, Any]] = []

    for rec in records:
        reason = classify(rec.source, rec.value, now_s, boom_prefix)
        out.reasons.append(reason)
        if reason is not None:
            process[_k("cx_events_total", source=rec.source, outcome="invalid")] += 1
            process[_k("cx_events_invalid_total", source=rec.source, reason=reason)] += 1
            continue
        doc = json.loads(rec.value)
        if doc["event_id"] in seen:
            process[_k("cx_events_total", source=rec.source, outcome="duplicate")] += 1
            continue
        seen.add(doc["event_id"])
        process[_k("cx_events_total", source=rec.source, outcome="accepted")] += 1
        if to_us(doc["occurred_at"]) <= now_us - LONGEST_S * US:
            process[_k("cx_events_late_total", source=rec.source)] += 1
        if rec.source == "tickets":
            tickets[doc["ticket_id"]].append(doc)
        else:
            surveys.append(doc)

    windows: dict[Key, float] = defaultdict(float)

    def place(at_us: int, name: str, amount: float = 1, **labels: str) -> None:
        out.placed_us.append(at_us)
        for w, span in WINDOWS_S.items():
            if now_us - span * US < at_us <= now_us:
                windows[_k(name, window=w, **labels)] += amount

    ticket_dims: dict[str, tuple[str, str]] = {}
    for tid, evs in tickets.items():
        created = next((e for e in evs if e["type"] == "ticket.created"), None)
        if created is None:
            continue  # held until its ticket.created arrives: no effect yet
        ch, tm = _dim(created, "channel") or "unknown", _dim(created, "team") or "unknown"
        ticket_dims[tid] = (ch, tm)
        prio = created.get("priority", "normal")
        dims = {"channel": ch, "team": tm}
        c0 = to_us(created["occurred_at"])
        state[_k("cx_tickets_created_total", **dims, priority=prio)] += 1

        def times(
            kind: str, author: str | None = None, evs: list[dict[str, Any]] = evs
        ) -> list[int]:
            return sorted(
                to_us(e["occurred_at"])
                for e in evs
                if e["type"] == kind and (author is None or e.get("author") == author)
            )

        agent = times("ticket.replied", "agent")
        customer = times("ticket.replied", "customer")
        resolves = times("ticket.resolved")
        reopens = times("ticket.reopened")
        if agent:
            frt = max(0, agent[0] - c0)
            state[_k("cx_first_response_seconds_count", **dims, priority=prio)] += 1
            state[_k("cx_first_response_seconds_sum", **dims, priority=prio)] += frt
            place(agent[0], "cx_first_response_window_seconds_count", **dims)
            place(agent[0], "cx_first_response_window_seconds_sum", frt, **dims)
        if resolves:
            r = resolves[0]
            res = max(0, r - c0)
            state[_k("cx_resolution_seconds_count", **dims, priority=prio)] += 1
            state[_k("cx_resolution_seconds_sum", **dims, priority=prio)] += res
            fc = not any(c < r for c in customer)
            state[_k("cx_tickets_resolved_total", **dims, priority=prio, first_contact=_b(fc))] += 1
            later_reopens = [x for x in reopens if x > r]
            state[_k("cx_tickets_reopened_total", **dims, priority=prio)] += len(later_reopens)
            final_fc = fc and not later_reopens
            place(r, "cx_resolution_window_seconds_count", **dims)
            place(r, "cx_resolution_window_seconds_sum", res, **dims)
            place(r, "cx_fcr_window_tickets", **dims, first_contact=_b(final_fc))
        status = sorted([(c0, 0)] + [(x, 1) for x in resolves] + [(x, 0) for x in reopens])
        state[_k("cx_tickets_open", **dims, priority=prio)] += 0 if status[-1][1] == 1 else 1

    for doc in surveys:
        inherited = ticket_dims.get(doc.get("ticket_id", ""), ("unknown", "unknown"))
        ch = _dim(doc, "channel") or inherited[0]
        tm = _dim(doc, "team") or inherited[1]
        dims = {"channel": ch, "team": tm}
        at, score, kind = to_us(doc["occurred_at"]), doc["score"], doc["type"]
        if kind == "survey.nps":
            cat = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
            state[_k("cx_nps_responses_total", **dims, category=cat)] += 1
            place(at, "cx_nps_window_responses", **dims, category=cat)
        elif kind == "survey.csat":
            state[_k("cx_csat_responses_total", **dims, score=str(score))] += 1
            place(at, "cx_csat_window_responses", **dims, score=str(score))
        else:
            state[_k("cx_ces_responses_total", **dims, score=str(score))] += 1
            place(at, "cx_ces_window_responses", **dims)
            place(at, "ces_sum", score, **dims)

    # Durations were summed in microseconds: publish seconds as the pipeline does.
    for group in (state, windows):
        for key in list(group):
            if key[0].endswith("_seconds_sum"):
                group[key] = group[key] / US
    out.ratios = _ratios(windows)
    out.state = dict(state) | {k: v for k, v in windows.items() if k[0] != "ces_sum"}
    out.process = dict(process)
    for key, value in out.ratios.items():
        labels = dict(key[1])
        n = sum(
            v
            for (name, ls), v in windows.items()
            if name == "cx_nps_window_responses"
            and dict(ls).items() >= {"window": "24h", **_dims(labels)}.items()
        )
        if key[0] == "cx_nps_score" and labels["window"] == "24h" and n >= 30 and value < 0:
            out.nps_low.add((labels["channel"], labels["team"]))
    return out


def _b(flag: bool) -> str:
    return "true" if flag else "false"


def _dims(labels: dict[str, str]) -> dict[str, str]:
    return {"channel": labels["channel"], "team": labels["team"]}


def _ratios(windows: dict[Key, float]) -> dict[Key, float]:
    nps: dict[frozenset[tuple[str, str]], dict[str, float]] = defaultdict(dict)
    csat: dict[frozenset[tuple[str, str]], dict[str, float]] = defaultdict(dict)
    ces: dict[frozenset[tuple[str, str]], dict[str, float]] = defaultdict(dict)
    for (name, labels), v in windows.items():
        ls = dict(labels)
        if name == "cx_nps_window_responses":
            nps[_strip(ls, "category")][ls["category"]] = v
        elif name == "cx_csat_window_responses":
            csat[_strip(ls, "score")][ls["score"]] = v
        elif name == "cx_ces_window_responses":
            ces[labels]["n"] = v
        elif name == "ces_sum":
            ces[labels]["sum"] = v
    out: dict[Key, float] = {}
    for labels, c in nps.items():
        n = sum(c.values())
        if n:
            out[("cx_nps_score", labels)] = 100 * (c.get("promoter", 0) - c.get("detractor", 0)) / n
    for labels, c in csat.items():
        n = sum(c.values())
        if n:
            out[("cx_csat_ratio", labels)] = (c.get("4", 0) + c.get("5", 0)) / n
    for labels, c in ces.items():
        if c.get("n"):
            out[("cx_ces_score", labels)] = c["sum"] / c["n"]
    return out


def _strip(labels: dict[str, str], name: str) -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in labels.items() if k != name)


def edge_violations(placed_us: Iterable[int], now_s: float, slack_s: float = 30.0) -> int:
    """Placements so near a window's edge that quantisation could move them:
    within W/60 (+ slack) of the old edge, or later than now. Must be 0 for an
    exact comparison; a scenario that runs too long would make this fail."""
    now_us = int(now_s * US)
    bad = 0
    for at in placed_us:
        if at > now_us:
            bad += 1
        for span in WINDOWS_S.values():
            if abs(at - (now_us - span * US)) <= (span / 60 + slack_s) * US:
                bad += 1
    return bad
