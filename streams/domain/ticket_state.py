"""Per-ticket state: where a ticket's numbers are derived.

The state keeps *facts* (creation, earliest agent reply, earliest customer
reply, earliest resolution, reopens, latest status event) and what it has
*emitted* to the rolling windows. Every event only updates facts; then
``_derive`` compares what the facts say should be observed with what was
emitted, and emits the difference: a first emission is *counted* (counters
and histograms, once per ticket), a change is a retraction plus an
uncounted re-add (windows are corrected, counters never rewound). So the
final window contents are a pure function of the set of events, whatever
order they arrived in, and events that precede their ``ticket.created``
simply wait as facts until it arrives.

With a schedules file (contract 8.2, 8.3) the same facts also give
business-time durations in the ticket's schedule (``*_business`` kinds,
placed and corrected exactly like the calendar ones) and the ticket's SLA
targets (``sla.SlaState``, opened at ``ticket.created`` and kept here). What
the SLA gauges hold for the ticket is remembered like ``open_emitted``: the
pending state of each target (``sla_pending``) and its due instant
(``sla_due``), sent as +1/-1 deltas when they change, on an event or on the
timer sweep (``tick``), and retracted when the state is dropped.

A route key is ``t:<ticket_id>`` for ticket events and surveys that name a
ticket, or ``e:<event_id>`` for other surveys; both use this state (the
latter only for de-duplication).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from streams.domain import sla as sla_rules
from streams.domain.dimensions import DimensionCap
from streams.domain.encoding import dumps
from streams.domain.model import (
    US_PER_S,
    Observation,
    SurveyResponse,
    TicketEvent,
    sla_due_code,
    sla_outcome_code,
    sla_pending_code,
)
from streams.domain.schedules import ALWAYS_OPEN, SchedulesConfig, business_us
from streams.errors import StateFormatError

#: Version of the stored form; any other is refused with a clear error.
FORMAT = 3
#: Bound on remembered event ids per key (hostile input cannot grow a state).
MAX_SEEN = 2_048
#: Bound on reopens awaiting their resolution (out of order arrival).
MAX_REOPENS = 256
#: An open ticket with no event for this long is dropped (its gauge closed).
MAX_OPEN_AGE_US = 90 * 86_400 * US_PER_S

_STATUS_RANK = {"ticket.created": 0, "ticket.reopened": 1, "ticket.resolved": 2}
_SURVEY_KIND = {"survey.nps": "nps", "survey.csat": "csat", "survey.ces": "ces"}


@dataclass
class Outcome:
    """What applying one event did. Observations carry placeholder ids; the
    pipeline stamps each with its position on the route topic."""

    status: Literal["accepted", "duplicate"]
    observations: list[Observation] = field(default_factory=list)


@dataclass
class _Created:
    event_id: str
    occurred_us: int
    dims: tuple[str, ...]
    priority: str


class RouteState:
    """The table value of one route key."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}  # event_id -> processing time first seen
        self.created: _Created | None = None
        self.agent_first_us: int | None = None
        self.customer_first_us: int | None = None
        self.resolved_first_us: int | None = None
        self.reopens: list[int] = []  # reopen times not yet counted
        self.reopen_last_us: int | None = None  # latest reopen (retracts FCR if after R)
        self.latest_status: tuple[int, int, str] | None = None  # (occurred, rank, event_id)
        # What the windows hold for this ticket: (placed_us, value) per kind.
        self.emitted: dict[str, tuple[int, int]] = {}
        self.open_emitted = False
        self.last_event_us = 0  # processing time of the latest applied event
        # With a schedules file: the ticket's schedule name (fixed at creation,
        # so its business durations do not move when the file changes), its
        # SLA targets, and what the SLA gauges hold for it.
        self.schedule: str | None = None
        self.sla: sla_rules.SlaState | None = None
        self.sla_pending_emitted: dict[str, str] = {}  # target -> on_track/at_risk/breached
        self.sla_due_emitted: dict[str, int] = {}  # target -> due instant in the multiset
        # Managed by the pipeline, persisted here: the partition the key
        # lives in, and the last applied offset per source (the route topic
        # or an input topic whose records were already in this partition).
        self.partition = -1
        self.offsets: dict[str, int] = {}

    @classmethod
    def new(cls) -> RouteState:
        return cls()

    # -- events ----------------------------------------------------------------

    def _first_time(self, event_id: str, now_us: int) -> bool:
        if event_id in self.seen:
            return False
        if len(self.seen) >= MAX_SEEN:
            del self.seen[next(iter(self.seen))]  # oldest first
        self.seen[event_id] = now_us
        self.last_event_us = max(self.last_event_us, now_us)
        return True

    def apply_ticket(
        self,
        ev: TicketEvent,
        now_us: int,
        cap: DimensionCap,
        schedules: SchedulesConfig | None = None,
        sla_warning: float = sla_rules.DEFAULT_WARNING,
    ) -> Outcome:
        """Apply one ticket event processed at ``now_us``. ``schedules`` (the
        schedules file, or None) gives business time and SLA targets."""
        if not self._first_time(ev.event_id, now_us):
            return Outcome("duplicate")
        t = ev.occurred_us
        if ev.type == "ticket.created":
            if self.created is not None:
                return Outcome("accepted")  # a repeated created has no effect
            self.created = _Created(ev.event_id, t, cap.resolve(ev.dims), ev.priority or "normal")
            self._status(t, ev)
            if schedules is not None:
                self._open_sla(schedules, cap, sla_warning)
        elif ev.type == "ticket.replied":
            if ev.author == "agent":
                self.agent_first_us = _min(self.agent_first_us, t)
            elif ev.author == "customer":
                self.customer_first_us = _min(self.customer_first_us, t)
            # bot replies never count
        elif ev.type == "ticket.resolved":
            self.resolved_first_us = _min(self.resolved_first_us, t)
            self._status(t, ev)
        elif ev.type == "ticket.reopened":
            if len(self.reopens) < MAX_REOPENS:
                self.reopens.append(t)
            self.reopen_last_us = max(self.reopen_last_us or t, t)
            self._status(t, ev)
        out = self._derive(is_created=ev.type == "ticket.created", schedules=schedules)
        # Only the timer sweep breaches by the clock (``tick``): an event
        # batch that carries a ticket and its reply settles both first.
        out.extend(self._sync_sla(now_us, judge=False))
        return Outcome("accepted", out)

    def apply_survey(self, resp: SurveyResponse, now_us: int, cap: DimensionCap) -> Outcome:
        if not self._first_time(resp.event_id, now_us):
            return Outcome("duplicate")
        inherited = cap.as_labels(self.created.dims) if self.created is not None else None
        dims = cap.resolve(resp.dims, inherited)
        kind = _SURVEY_KIND[resp.type]
        obs = Observation(kind, dims, resp.occurred_us, resp.score, resp.event_id)  # type: ignore[arg-type]
        return Outcome("accepted", [obs])

    def _status(self, occurred_us: int, ev: TicketEvent) -> None:
        key = (occurred_us, _STATUS_RANK[ev.type], ev.event_id)
        if self.latest_status is None or key > self.latest_status:
            self.latest_status = key

    # -- derivation ------------------------------------------------------------

    def _open_sla(self, schedules: SchedulesConfig, cap: DimensionCap, warning: float) -> None:
        c = self.created
        assert c is not None
        schedule = schedules.schedule_for(cap.as_labels(c.dims))
        # "" is the default 24x7 (a file's schedule may also be named "24x7").
        self.schedule = "" if schedule is ALWAYS_OPEN else schedule.name
        if schedules.sla is not None:
            self.sla = sla_rules.open_targets(
                schedules.sla, schedule, c.priority, c.occurred_us, warning
            )

    def _derive(
        self, *, is_created: bool, schedules: SchedulesConfig | None = None
    ) -> list[Observation]:
        c = self.created
        if c is None:
            return []  # facts wait for ticket.created
        out: list[Observation] = []

        def obs(kind: str, placed: int, value: int, sign: int = 1, counted: bool = True) -> None:
            out.append(
                Observation(kind, c.dims, placed, value, "", c.priority, sign, counted)  # type: ignore[arg-type]
            )

        if is_created:
            obs("ticket_created", c.occurred_us, 1)

        desired: dict[str, tuple[int, int]] = {}
        if self.agent_first_us is not None:
            desired["first_response"] = (
                self.agent_first_us,
                max(0, self.agent_first_us - c.occurred_us),
            )
        r = self.resolved_first_us
        if r is not None:
            desired["resolution"] = (r, max(0, r - c.occurred_us))
            customer_before = self.customer_first_us is not None and self.customer_first_us < r
            reopened_after = self.reopen_last_us is not None and self.reopen_last_us > r
            desired["fcr"] = (r, 0 if customer_before or reopened_after else 1)
        if self.schedule is not None and schedules is not None:
            # The schedule named at creation; one since removed from the file
            # counts as 24x7 (calendar time), like an unassigned key.
            schedule = schedules.schedules.get(self.schedule)
            for kind, end in (("first_response", self.agent_first_us), ("resolution", r)):
                if end is None:
                    continue
                value = (
                    end - c.occurred_us
                    if schedule is None
                    else business_us(schedule, c.occurred_us, end)
                )
                desired[f"{kind}_business"] = (end, max(0, value))
        for kind in (
            "first_response",
            "resolution",
            "fcr",
            "first_response_business",
            "resolution_business",
        ):
            want = desired.get(kind)
            have = self.emitted.get(kind)
            if want == have or want is None:
                continue
            if have is None:
                if kind == "fcr":
                    # The counter records the status at the first resolution,
                    # before any later reopen; the window gets the full truth.
                    at_resolution = self._fcr_at_resolution()
                    obs("fcr", want[0], at_resolution)
                    if want[1] != at_resolution:
                        obs("fcr", want[0], at_resolution, sign=-1, counted=False)
                        obs("fcr", want[0], want[1], counted=False)
                else:
                    obs(kind, want[0], want[1])
            else:
                obs(kind, have[0], have[1], sign=-1, counted=False)
                obs(kind, want[0], want[1], counted=False)
            self.emitted[kind] = want

        if r is not None and self.reopens:
            due = [t for t in self.reopens if t > r]
            if due:
                self.reopens = [t for t in self.reopens if t <= r]
                for t in due:
                    obs("reopened", t, 1)

        if self.sla is not None:
            self.sla, changes = (
                sla_rules.on_agent_reply(self.sla, self.agent_first_us)
                if self.agent_first_us is not None
                else (self.sla, [])
            )
            for change in changes:
                out.append(_sla_outcome(c, change))
            if r is not None:
                self.sla, changes = sla_rules.on_resolved(self.sla, r)
                for change in changes:
                    out.append(_sla_outcome(c, change))

        is_open = (
            self.latest_status is not None
            and self.latest_status[1] != _STATUS_RANK["ticket.resolved"]
        )
        if is_open != self.open_emitted:
            obs("open", c.occurred_us, 1 if is_open else -1, counted=False)
            self.open_emitted = is_open
        return out

    # -- SLA gauges ---------------------------------------------------------------

    def tick(self, now_us: int) -> list[Observation]:
        """The wall clock at ``now_us`` (the timer sweep): pending targets past
        their due instant are breached, and the gauges follow. Empty when
        nothing changed (then the state need not be written)."""
        return self._sync_sla(now_us, judge=True)

    def _sync_sla(self, now_us: int, *, judge: bool) -> list[Observation]:
        c = self.created
        if c is None or self.sla is None:
            return []
        out: list[Observation] = []
        if judge:
            self.sla, changes = sla_rules.on_tick(self.sla, now_us)
            out.extend(_sla_outcome(c, change) for change in changes)
        pending = sla_rules.classify(self.sla, now_us)
        due = sla_rules.next_due(self.sla, now_us)
        out.extend(self._gauge_deltas(pending, due))
        return out

    def _gauge_deltas(
        self, pending: Mapping[str, str], due: Mapping[str, int]
    ) -> list[Observation]:
        """+1/-1 observations moving the gauges from what they hold for this
        ticket to ``pending`` / ``due``."""
        c = self.created
        assert c is not None
        out: list[Observation] = []

        def delta(kind: str, value: int, sign: int) -> None:
            out.append(
                Observation(kind, c.dims, c.occurred_us, value, "", c.priority, sign, False)  # type: ignore[arg-type]
            )

        for target in sorted(self.sla_pending_emitted.keys() | pending.keys()):
            have, want = self.sla_pending_emitted.get(target), pending.get(target)
            if have == want:
                continue
            if have is not None:
                delta("sla_pending", sla_pending_code(target, have), -1)
            if want is not None:
                delta("sla_pending", sla_pending_code(target, want), 1)
        for target in sorted(self.sla_due_emitted.keys() | due.keys()):
            had, wants = self.sla_due_emitted.get(target), due.get(target)
            if had == wants:
                continue
            if had is not None:
                delta("sla_due", sla_due_code(target, had), -1)
            if wants is not None:
                delta("sla_due", sla_due_code(target, wants), 1)
        self.sla_pending_emitted = dict(pending)
        self.sla_due_emitted = dict(due)
        return out

    def _fcr_at_resolution(self) -> int:
        r = self.resolved_first_us
        assert r is not None
        return 0 if self.customer_first_us is not None and self.customer_first_us < r else 1

    # -- lifetime --------------------------------------------------------------

    def expire(self, now_us: int, *, dedup_horizon_us: int) -> None:
        """Forget event ids past the dedup horizon."""
        cutoff = now_us - dedup_horizon_us
        if self.seen and next(iter(self.seen.values())) < cutoff:
            self.seen = {k: t for k, t in self.seen.items() if t >= cutoff}

    def is_expired(self, now_us: int, *, dedup_horizon_us: int, retention_us: int) -> bool:
        """Finished tickets after the retention, orphans (never created) and
        unlinked-survey keys after the dedup horizon, abandoned open tickets
        after 90 days without an event."""
        idle = now_us - self.last_event_us
        if self.created is None:
            return idle > dedup_horizon_us
        if self.open_emitted:
            return idle > MAX_OPEN_AGE_US
        return idle > max(retention_us, dedup_horizon_us)

    def close_observations(self) -> list[Observation]:
        """Sent when an expired state is dropped, so the open gauge stays right."""
        c = self.created
        if c is None:
            return []
        out = self._gauge_deltas({}, {}) if self.sla is not None else []
        if self.open_emitted:
            self.open_emitted = False
            out.append(Observation("open", c.dims, c.occurred_us, -1, "", c.priority, 1, False))
        return out

    # -- storage ---------------------------------------------------------------

    def to_bytes(self) -> bytes:
        c = self.created
        return dumps(
            {
                "v": FORMAT,
                "s": list(self.seen.items()),
                "c": None if c is None else [c.event_id, c.occurred_us, list(c.dims), c.priority],
                "a": self.agent_first_us,
                "cu": self.customer_first_us,
                "r": self.resolved_first_us,
                "ro": self.reopens,
                "rl": self.reopen_last_us,
                "ls": None if self.latest_status is None else list(self.latest_status),
                "e": {k: list(v) for k, v in self.emitted.items()},
                "oe": self.open_emitted,
                "le": self.last_event_us,
                "p": self.partition,
                "o": self.offsets,
                "sc": self.schedule,
                "sla": None if self.sla is None else self.sla.to_dict(),
                "sp": self.sla_pending_emitted,
                "sd": self.sla_due_emitted,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RouteState:
        doc: dict[str, Any] = orjson.loads(data)
        if not isinstance(doc, dict) or doc.get("v") != FORMAT:
            version = doc.get("v") if isinstance(doc, dict) else None
            raise StateFormatError(
                f"ticket state has format {version!r}; this cxstream reads format {FORMAT} "
                "only (state written by another version: start with a new --app-id, or run "
                "the version that wrote it)"
            )
        s = cls()
        s.seen = dict(doc["s"])
        if doc["c"] is not None:
            eid, t, dims, prio = doc["c"]
            s.created = _Created(eid, t, tuple(dims), prio)
        s.agent_first_us = doc["a"]
        s.customer_first_us = doc["cu"]
        s.resolved_first_us = doc["r"]
        s.reopens = list(doc["ro"])
        s.reopen_last_us = doc["rl"]
        s.latest_status = None if doc["ls"] is None else (doc["ls"][0], doc["ls"][1], doc["ls"][2])
        s.emitted = {k: (v[0], v[1]) for k, v in doc["e"].items()}
        s.open_emitted = doc["oe"]
        s.last_event_us = doc["le"]
        s.partition = doc["p"]
        s.offsets = dict(doc["o"])
        s.schedule = doc["sc"]
        s.sla = None if doc["sla"] is None else sla_rules.SlaState.from_dict(doc["sla"])
        s.sla_pending_emitted = dict(doc["sp"])
        s.sla_due_emitted = dict(doc["sd"])
        return s


def _sla_outcome(c: _Created, change: sla_rules.SlaOutcome) -> Observation:
    return Observation(
        "sla_outcome",
        c.dims,
        change.placed_us,
        sla_outcome_code(change.target, change.met),
        "",
        c.priority,
        change.sign,
        change.counted,
    )


def _min(current: int | None, t: int) -> int:
    return t if current is None else min(current, t)
