"""Value types shared by the domain modules.

Times are integer microseconds since the Unix epoch (``*_us``) so that
durations, sums and window edges are exact; seconds appear only at the edges
(exposition, alert values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Source = Literal["tickets", "surveys"]

TICKET_TYPES = ("ticket.created", "ticket.replied", "ticket.resolved", "ticket.reopened")
SURVEY_TYPES = ("survey.nps", "survey.csat", "survey.ces")
PRIORITIES = ("low", "normal", "high", "urgent")
AUTHORS = ("agent", "customer", "bot")
SCORE_RANGES: dict[str, tuple[int, int]] = {
    "survey.nps": (0, 10),
    "survey.csat": (1, 5),
    "survey.ces": (1, 7),
}

#: Reasons an input record is rejected (contract section 4).
REASONS = (
    "malformed",
    "too_large",
    "unknown_type",
    "schema",
    "out_of_range",
    "future_timestamp",
    "processing_error",
)

UNKNOWN = "unknown"
OTHER = "other"
DEFAULT_DIMENSIONS = ("channel", "team")
US_PER_S = 1_000_000


@dataclass(frozen=True, slots=True)
class TicketEvent:
    """A validated ticket event. ``dims`` holds only the dimensions present in
    the event (normalised); missing ones are filled with ``unknown`` later."""

    event_id: str
    type: str
    occurred_us: int
    ticket_id: str
    dims: dict[str, str]
    priority: str | None = None  # ticket.created only; None means "normal"
    author: str | None = None  # ticket.replied only


@dataclass(frozen=True, slots=True)
class SurveyResponse:
    """A validated survey response."""

    event_id: str
    type: str
    occurred_us: int
    score: int
    dims: dict[str, str]
    ticket_id: str | None = None
    comment: str | None = None
    respondent_id: str | None = None


Event = TicketEvent | SurveyResponse


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input record was refused: one reason from ``REASONS``."""

    reason: str
    detail: str


ObservationKind = Literal[
    "nps",  # value = score 0..10
    "csat",  # value = score 1..5
    "ces",  # value = score 1..7
    "ticket_created",  # value = 1; counts cx_tickets_created_total
    "first_response",  # value = duration in microseconds (>= 0)
    "resolution",  # value = duration in microseconds (>= 0)
    "fcr",  # value = 1 first-contact-resolved, 0 not
    "reopened",  # value = 1; counts cx_tickets_reopened_total
    "open",  # value = +1 (ticket became open) or -1 (became not open)
    # With a schedules file (contract 8.2, 8.3); values encoded by the sla_* helpers below.
    "first_response_business",  # value = business-time duration in microseconds (>= 0)
    "resolution_business",  # value = business-time duration in microseconds (>= 0)
    "sla_outcome",  # value = sla_outcome_code(target, met); counted = a breach, first known
    "sla_pending",  # value = sla_pending_code(target, state); +1 / -1 into a gauge
    "sla_due",  # value = sla_due_code(target, due_us); +1 / -1 into the next-due multiset
]

#: SLA targets and pending states, in the order their codes use.
SLA_TARGETS: tuple[str, ...] = ("first_reply", "resolution")
SLA_PENDING_STATES: tuple[str, ...] = ("on_track", "at_risk", "breached")


def sla_outcome_code(target: str, met: bool) -> int:
    return 2 * SLA_TARGETS.index(target) + (1 if met else 0)


def sla_outcome_of(code: int) -> tuple[str, bool]:
    return SLA_TARGETS[code // 2], code % 2 == 1


def sla_pending_code(target: str, state: str) -> int:
    return 3 * SLA_TARGETS.index(target) + SLA_PENDING_STATES.index(state)


def sla_pending_of(code: int) -> tuple[str, str]:
    return SLA_TARGETS[code // 3], SLA_PENDING_STATES[code % 3]


def sla_due_code(target: str, due_us: int) -> int:
    # One integer per observation: the due instant with the target in its low bit.
    return 2 * due_us + SLA_TARGETS.index(target)


def sla_due_of(code: int) -> tuple[str, int]:
    return SLA_TARGETS[code % 2], code // 2


@dataclass(frozen=True, slots=True)
class Observation:
    """One fact the ticket/survey stage hands to the aggregate stage.

    ``sign`` = -1 retracts an earlier observation with the same kind, dims,
    priority, placed_us and value from the rolling windows (a correction).
    ``counted`` says whether it also moves the monotonic counters/histograms:
    corrections and retractions never do (counters are never rewound).
    ``obs_id`` is the observation's position on the route topic (see
    ``windows.obs_id``), so a replayed observation is recognised and ignored
    downstream.
    """

    kind: ObservationKind
    dims: tuple[str, ...]
    placed_us: int
    value: int
    obs_id: str
    priority: str = ""  # ticket-derived observations: the ticket's priority
    sign: int = 1
    counted: bool = True

    def with_id(self, obs_id: str) -> Observation:
        """This observation with its position (``dataclasses.replace`` costs
        several times more, and this runs for every observation)."""
        return Observation(
            self.kind,
            self.dims,
            self.placed_us,
            self.value,
            obs_id,
            self.priority,
            self.sign,
            self.counted,
        )


# --------------------------------------------------------------------------
# What the aggregate stage publishes (read by collectors and alert rules)
# --------------------------------------------------------------------------

#: Histogram bucket upper bounds, in seconds, for cx_first_response_seconds and
#: cx_resolution_seconds: minutes to weeks, not the 5 ms..10 s defaults.
DURATION_BUCKETS_S: tuple[float, ...] = (
    60,
    300,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
    172800,
    604800,
    2592000,
)

#: Quantiles published for window summaries.
SUMMARY_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A rolling window: ``name`` as published in the ``window`` label."""

    name: str
    seconds: int

    @property
    def us(self) -> int:
        return self.seconds * US_PER_S


DEFAULT_WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec("1h", 3600),
    WindowSpec("24h", 86400),
    WindowSpec("7d", 7 * 86400),
    WindowSpec("30d", 30 * 86400),
)


@dataclass(frozen=True, slots=True)
class DurationSummary:
    """Exact count and sum, estimated quantiles (seconds) of a window."""

    count: int
    sum_us: int
    quantiles: dict[float, float]  # SUMMARY_QUANTILES -> seconds; empty when count == 0

    @property
    def sum_s(self) -> float:
        return self.sum_us / US_PER_S


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """Everything one rolling window holds for one dims key at ``now``."""

    window: str
    nps: dict[str, int]  # promoter/passive/detractor -> responses (all three keys present)
    csat: dict[int, int]  # score 1..5 -> responses (all five keys present)
    ces_count: int
    ces_sum: int
    fcr: dict[bool, int]  # first_contact -> tickets (both keys present)
    first_response: DurationSummary
    resolution: DurationSummary
    ces_sum_sq: int | None = None  # sum of squared CES scores; None: not kept (no CES bounds)
    # Contract 8.2 / 8.3: business-time durations and SLA outcomes (zero without a schedules file).
    first_response_business: DurationSummary | None = None
    resolution_business: DurationSummary | None = None
    sla_achieved: dict[str, tuple[int, int]] | None = None  # target -> (met, breached)

    def sla_achieved_ratio(self, target: str) -> float | None:
        met, breached = (self.sla_achieved or {}).get(target, (0, 0))
        return None if met + breached == 0 else met / (met + breached)

    @property
    def nps_responses(self) -> int:
        return sum(self.nps.values())

    @property
    def nps_score(self) -> float | None:
        n = self.nps_responses
        return None if n == 0 else 100.0 * (self.nps["promoter"] - self.nps["detractor"]) / n

    @property
    def csat_responses(self) -> int:
        return sum(self.csat.values())

    @property
    def csat_ratio(self) -> float | None:
        n = self.csat_responses
        return None if n == 0 else (self.csat[4] + self.csat[5]) / n

    @property
    def ces_score(self) -> float | None:
        return None if self.ces_count == 0 else self.ces_sum / self.ces_count

    @property
    def fcr_tickets(self) -> int:
        return self.fcr[True] + self.fcr[False]

    @property
    def fcr_ratio(self) -> float | None:
        n = self.fcr_tickets
        return None if n == 0 else self.fcr[True] / n


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Cumulative histogram (never rewound): per-bucket (non-cumulative) counts
    aligned with DURATION_BUCKETS_S plus a final +Inf bucket, exact sum."""

    buckets: tuple[int, ...]  # len(DURATION_BUCKETS_S) + 1, non-cumulative
    sum_us: int

    @property
    def count(self) -> int:
        return sum(self.buckets)


@dataclass(frozen=True, slots=True)
class CountersSnapshot:
    """The monotonic counters, histograms and the open gauge of one dims key."""

    nps: dict[str, int]  # category -> total
    csat: dict[int, int]  # score -> total
    ces: dict[int, int]  # score -> total
    created: dict[str, int]  # priority -> total
    resolved: dict[tuple[str, bool], int]  # (priority, first_contact) -> total
    reopened: dict[str, int]  # priority -> total
    open: dict[str, int]  # priority -> tickets open now (gauge)
    first_response: dict[str, HistogramSnapshot]  # priority -> histogram
    resolution: dict[str, HistogramSnapshot]  # priority -> histogram
    # Contract 8.2 / 8.3 (empty without a schedules file).
    first_response_business: dict[str, HistogramSnapshot] = field(default_factory=dict)
    resolution_business: dict[str, HistogramSnapshot] = field(default_factory=dict)
    sla_breaches: dict[tuple[str, str], int] = field(default_factory=dict)  # (priority, target)
    #: (priority, target, state) -> open tickets whose target is pending in that state (gauge)
    sla_pending: dict[tuple[str, str, str], int] = field(default_factory=dict)
    #: target -> earliest due instant (us) among pending targets not yet breached
    sla_next_due_us: dict[str, int] = field(default_factory=dict)
