"""SLA policies and each ticket's SLA targets (contract 8.3). Pure.

A policy gives, per priority, targets for ``first_reply`` and ``resolution``
(``30m business``, ``8h calendar``). When a ticket is created its targets
get a **due instant**: when its elapsed time since ``ticket.created``, in
business time of the ticket's schedule or in calendar time, reaches the
target (``schedules.due_instant``), and a **warning instant**, from when it
is ``at_risk``: when less than the warning horizon (default 25 % of the
target) of that same time remains. Both are fixed at creation, so a ticket's
targets never depend on when they are looked at (a changed schedules file
or ``--sla-warning`` applies to tickets created after the change).

Evidence and outcomes:

* The first agent reply is the evidence of ``first_reply``; the first
  resolution is the evidence of ``resolution`` **and** of ``first_reply``
  when it comes before any agent reply (a ticket solved without a reply has
  been answered; it is not left to breach).
* A target is **met** when its evidence occurred at or before the due
  instant, **breached** when after; it is pending until evidence is known.
  The clock (``on_tick``) breaches a pending target once ``now`` is past its
  due instant.
* Evidence is ordered by ``occurred_at``, not by arrival: an earlier
  reply arriving later replaces the evidence. Outcomes are therefore the
  same for every arrival order of the same events.

Out of order, following the contract's rule (windows are corrected,
counters never rewound): a target judged breached (by the clock, or by a
late reply) that then receives evidence at or before its due instant (a
reply delayed on its way) becomes **met**: the achieved-ratio window
observation of the breach is retracted and the met one added, but the
breach stays counted in ``cx_sla_breaches_total``. That is the only case in
which the counter differs between arrival orders; it never counts a ticket's
target twice.

Placement for ``cx_sla_achieved_ratio``: a met target at its evidence's
``occurred_at``, a breached target at its due instant (the moment it became
breached, however that became known), so the window, too, is the same for
every arrival order.

Memory: at most two targets per ticket, five numbers each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from streams.domain.configfile import FieldError, parse_duration_us
from streams.domain.model import PRIORITIES
from streams.domain.schedules import Schedule, due_instant

__all__ = [
    "CLOCKS",
    "DEFAULT_WARNING",
    "PENDING_STATES",
    "TARGETS",
    "SlaOutcome",
    "SlaPolicy",
    "SlaState",
    "SlaStateError",
    "TargetPolicy",
    "TargetState",
    "classify",
    "next_due",
    "on_agent_reply",
    "on_resolved",
    "on_tick",
    "open_targets",
    "parse_target",
]

Target = Literal["first_reply", "resolution"]
Status = Literal["pending", "met", "breached"]
PendingState = Literal["on_track", "at_risk", "breached"]

TARGETS: Final[tuple[Target, ...]] = ("first_reply", "resolution")
CLOCKS: Final = ("business", "calendar")
PENDING_STATES: Final[tuple[PendingState, ...]] = ("on_track", "at_risk", "breached")
DEFAULT_WARNING: Final = 0.25
STATE_VERSION: Final = 1

_TARGET_TEXT = re.compile(r"^\s*(\S+)\s+(\S+)\s*$")


class SlaStateError(ValueError):
    """A stored SLA state this version cannot read."""


# ---------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetPolicy:
    """One target: ``target_us`` of ``business`` or ``calendar`` time."""

    target_us: int
    clock: str

    def __post_init__(self) -> None:
        if self.target_us <= 0:
            raise FieldError("target", "an SLA target must be longer than 0")
        if self.clock not in CLOCKS:
            raise FieldError("target", f"{self.clock!r} is not business or calendar")


def parse_target(text: str) -> TargetPolicy:
    """``30m business``, ``8h calendar`` (the time kind is required)."""
    match = _TARGET_TEXT.match(text)
    us = parse_duration_us(match.group(1)) if match else None
    if match is None or us is None or match.group(2) not in CLOCKS:
        raise FieldError("target", f"{text!r} is not a target like '30m business' or '8h calendar'")
    return TargetPolicy(us, match.group(2))


@dataclass(frozen=True)
class SlaPolicy:
    """priority -> target name -> TargetPolicy; a missing pair has no target."""

    targets: Mapping[str, Mapping[str, TargetPolicy]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for priority, per in self.targets.items():
            if priority not in PRIORITIES:
                raise FieldError(
                    "priority", f"{priority!r} is not a priority ({', '.join(PRIORITIES)})"
                )
            for name in per:
                if name not in TARGETS:
                    raise FieldError(
                        "target", f"{name!r} is not an SLA target ({', '.join(TARGETS)})", name
                    )

    def for_priority(self, priority: str) -> Mapping[str, TargetPolicy]:
        return self.targets.get(priority, {})


# ---------------------------------------------------------------------------
# Per-ticket state
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetState:
    """One target of one ticket. ``due_us`` None: never due (a schedule that
    does not open again within the search limit)."""

    due_us: int | None
    warn_us: int | None
    status: Status = "pending"
    evidence_us: int | None = None  # earliest known reply/resolution
    counted: bool = False  # its breach is in cx_sla_breaches_total

    def outcome(self) -> tuple[bool, int] | None:
        """(met, placed_us) as it stands in the windows; None while pending."""
        if self.status == "met":
            assert self.evidence_us is not None
            return True, self.evidence_us
        if self.status == "breached":
            assert self.due_us is not None
            return False, self.due_us
        return None


@dataclass(frozen=True)
class SlaOutcome:
    """A change for the aggregate stage: ``sign`` +1 places an outcome in the
    achieved-ratio windows, -1 retracts one (a correction); ``counted``
    increments ``cx_sla_breaches_total`` (only ever with a +1 breach)."""

    target: str
    met: bool
    placed_us: int
    sign: int = 1
    counted: bool = False


@dataclass(frozen=True)
class SlaState:
    """The SLA targets of one ticket (part of its ticket state)."""

    targets: Mapping[str, TargetState] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "t": {
                name: [t.due_us, t.warn_us, t.status, t.evidence_us, t.counted]
                for name, t in sorted(self.targets.items())
            },
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> SlaState:
        version = doc.get("v")
        if version != STATE_VERSION:
            raise SlaStateError(
                f"SLA state version {version!r} is not supported (this cxstream reads "
                f"version {STATE_VERSION}); was it written by a newer release?"
            )
        targets: dict[str, TargetState] = {}
        for name, (due, warn, status, evidence, counted) in doc.get("t", {}).items():
            if name not in TARGETS or status not in ("pending", "met", "breached"):
                raise SlaStateError(f"SLA state has an unknown target or status: {name!r}")
            targets[name] = TargetState(
                None if due is None else int(due),
                None if warn is None else int(warn),
                status,
                None if evidence is None else int(evidence),
                bool(counted),
            )
        return cls(targets)


def _due(schedule: Schedule, tp: TargetPolicy, start_us: int, amount_us: int) -> int | None:
    if tp.clock == "calendar":
        return start_us + amount_us
    return due_instant(schedule, start_us, amount_us)


def open_targets(
    policy: SlaPolicy,
    schedule: Schedule,
    priority: str,
    created_us: int,
    warning: float = DEFAULT_WARNING,
) -> SlaState:
    """The targets of a ticket created at ``created_us`` (its schedule is the
    one its dimensions are assigned to)."""
    if not 0.0 <= warning < 1.0:
        raise ValueError(f"SLA warning horizon {warning!r} must be in [0, 1)")
    targets: dict[str, TargetState] = {}
    for name, tp in policy.for_priority(priority).items():
        horizon = round(tp.target_us * warning)
        targets[name] = TargetState(
            due_us=_due(schedule, tp, created_us, tp.target_us),
            warn_us=_due(schedule, tp, created_us, tp.target_us - horizon),
        )
    return SlaState(targets)


def _with_evidence(
    ts: TargetState, name: str, occurred_us: int
) -> tuple[TargetState, list[SlaOutcome]]:
    if ts.evidence_us is not None and occurred_us >= ts.evidence_us:
        return ts, []  # not earlier than what is known: changes nothing
    met = ts.due_us is None or occurred_us <= ts.due_us
    new = replace(
        ts,
        status="met" if met else "breached",
        evidence_us=occurred_us,
        counted=ts.counted or not met,
    )
    before, after = ts.outcome(), new.outcome()
    if before == after:
        return new, []
    out: list[SlaOutcome] = []
    if before is not None:
        out.append(SlaOutcome(name, before[0], before[1], sign=-1))
    assert after is not None
    out.append(SlaOutcome(name, after[0], after[1], counted=new.counted and not ts.counted))
    return new, out


def _apply(
    state: SlaState, names: tuple[str, ...], occurred_us: int
) -> tuple[SlaState, list[SlaOutcome]]:
    targets = dict(state.targets)
    out: list[SlaOutcome] = []
    for name in names:
        if name in targets:
            targets[name], changes = _with_evidence(targets[name], name, occurred_us)
            out.extend(changes)
    return SlaState(targets), out


def on_agent_reply(state: SlaState, occurred_us: int) -> tuple[SlaState, list[SlaOutcome]]:
    """A ``ticket.replied`` with author ``agent``."""
    return _apply(state, ("first_reply",), occurred_us)


def on_resolved(state: SlaState, occurred_us: int) -> tuple[SlaState, list[SlaOutcome]]:
    """A ``ticket.resolved``: evidence of the resolution and, if no agent
    reply came earlier, of the first reply."""
    return _apply(state, ("first_reply", "resolution"), occurred_us)


def on_tick(state: SlaState, now_us: int) -> tuple[SlaState, list[SlaOutcome]]:
    """The wall clock: pending targets whose due instant has passed are breached."""
    targets = dict(state.targets)
    out: list[SlaOutcome] = []
    for name, ts in sorted(state.targets.items()):
        if ts.status == "pending" and ts.due_us is not None and now_us > ts.due_us:
            targets[name] = replace(ts, status="breached", counted=True)
            out.append(SlaOutcome(name, False, ts.due_us, counted=not ts.counted))
    return SlaState(targets), out


def classify(state: SlaState, now_us: int) -> dict[str, PendingState]:
    """The ``cx_sla_pending`` state of each target still without evidence."""
    out: dict[str, PendingState] = {}
    for name, ts in state.targets.items():
        if ts.evidence_us is not None:
            continue
        if ts.due_us is not None and now_us > ts.due_us:
            out[name] = "breached"
        elif ts.warn_us is not None and now_us >= ts.warn_us:
            out[name] = "at_risk"
        else:
            out[name] = "on_track"
    return out


def next_due(state: SlaState, now_us: int) -> dict[str, int]:
    """Due instants of targets without evidence and not yet breached at
    ``now_us`` (``cx_sla_next_due_seconds`` takes the earliest per target)."""
    return {
        name: ts.due_us
        for name, ts in state.targets.items()
        if ts.evidence_us is None and ts.due_us is not None and now_us <= ts.due_us
    }
