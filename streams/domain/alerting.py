"""The alert state machine of one dims key, and the alert events it emits.

Pure: no clock reads, no I/O. Times are integer microseconds since the Unix
epoch. The pipeline keeps one ``AlertBook`` per dims key inside that key's
table value (``to_dict()``/``from_dict()``), so alert state is written to the
same changelog partition as the windows it is computed from, and a restart
or a moved partition neither loses nor repeats an alert.

Threshold rules, per rule and dims key::

    inactive --(breaching)--> pending --(breaching for `for`)--> firing
        ^                        |                                  |
        +---(not breaching)------+                                  |
        +---(recovered past resolve_threshold, or window empty)-----+

* *Breaching* means: the window has a value, at least ``min_samples`` samples,
  and the value satisfies ``op threshold``. Too few samples is never a breach.
* A firing alert resolves when the value crosses back past
  ``resolve_threshold`` (hysteresis; default = ``threshold``) or when the
  window has drained to zero samples (no value). It does *not* resolve merely
  because the sample count fell below ``min_samples`` while the value still
  breaches: too little evidence of recovery is not recovery.
* One ``firing`` event when the alert starts and one ``resolved`` event when
  it ends; nothing in between however often it is evaluated.
* ``startsAt`` is when the condition began to hold (the start of pending), as
  Prometheus does; ``endsAt`` is the evaluation time that resolved it.
* A firing alert whose rule was removed from the configuration, or no longer
  applies to this key (filters), resolves. One whose labels changed (e.g. a
  new severity) resolves under its old labels and starts again under the new.

Confidence (contract 8.1): a rule with ``confidence: true`` is judged on a
bound of the window's confidence interval, given by the ``bounds`` source
passed to ``evaluate`` (``streams.domain.confidence.WindowBounds``): the
upper bound for ``<``/``<=``, the lower bound for ``>``/``>=``, both to fire
and to resolve (hysteresis applies to the bound). Without a bound (no source
passed, or CES with fewer than two responses) such a rule does not fire, and
a firing one resolves. Its firing event's annotations carry ``lower_bound``,
``upper_bound`` and ``confidence`` (the level); the resolved event repeats
the firing event's annotations, like every resolved event.

Detractor alerts (``CxDetractorResponse``): one firing alert per NPS response
of 0-6 with a non-empty comment, deduplicated by the response's ``event_id``
while it is open, resolved by ``evaluate`` once ``resolve_after`` (24 h) has
passed since it fired. Its labels carry ``event_id`` so each response has its
own fingerprint; alert labels are not Prometheus labels (``cx_alerts_total``
uses only alertname, severity, status), so this does not grow any series.
Its ``window`` label is ``response``. ``ticket_id``, ``respondent_id`` and the
comment are annotations only.

Fingerprint: the first 16 hex digits of SHA-256 over the canonical JSON of the
sorted label pairs (alertname is one of the labels). It depends on nothing but
the labels, so it is the same in every process and after every restart. It is
not Alertmanager's own fingerprint (that one is computed by Alertmanager).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

from streams.domain.model import SurveyResponse, WindowSnapshot
from streams.domain.rules import (
    DEFAULT_DETRACTOR,
    RESERVED_LABELS,
    Bounds,
    DetractorConfig,
    Rule,
    RuleSet,
    metric_sample_size,
    metric_value,
    render_template,
)

__all__ = [
    "DETRACTOR_THRESHOLD",
    "DETRACTOR_WINDOW",
    "MAX_COMMENT_CHARS",
    "AlertBook",
    "AlertEvent",
    "BoundsSource",
    "Status",
    "detractor_events",
    "fingerprint",
    "rfc3339",
]

Status = Literal["firing", "resolved"]


class BoundsSource(Protocol):
    """The confidence interval of a rule's metric in a window snapshot: the
    seam through which window state feeds ``confidence: true`` rules."""

    @property
    def level(self) -> float: ...

    def __call__(self, metric: str, snap: WindowSnapshot) -> Bounds | None: ...


#: The ``window`` label of detractor alerts: they are about one response.
DETRACTOR_WINDOW: Final = "response"
#: Highest NPS score that is a detractor (the event's ``threshold``).
DETRACTOR_THRESHOLD: Final = 6.0
#: Comments are cut to this length in annotations and in the stored book: the
#: full text stays on the surveys topic, and the book must stay small.
MAX_COMMENT_CHARS: Final = 300

_BOOK_VERSION: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(us: int) -> str:
    """Microseconds since the epoch -> RFC 3339 UTC with ``Z`` (exact, 6 digits)."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable identity of an alert: 16 hex digits of SHA-256 over its sorted labels."""
    canonical = json.dumps(sorted(labels.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertEvent:
    """One alert event on the alerts topic (contract section 6)."""

    status: Status
    labels: dict[str, str] = field(hash=False)
    annotations: dict[str, str] = field(hash=False)
    starts_us: int
    ends_us: int | None  # set on resolved events only
    value: float | None  # None only when resolved because the window drained
    threshold: float
    sample_size: int

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]

    @property
    def severity(self) -> str:
        return self.labels["severity"]

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of schemas/alert-event.schema.json."""
        doc: dict[str, Any] = {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_us),
        }
        if self.ends_us is not None:
            doc["endsAt"] = rfc3339(self.ends_us)
        doc["value"] = self.value
        doc["threshold"] = self.threshold
        doc["sample_size"] = self.sample_size
        return doc


# ---------------------------------------------------------------------------
# Book entries
# ---------------------------------------------------------------------------


@dataclass
class _Tracked:
    """A threshold rule's alert that is pending or firing."""

    firing: bool
    since_us: int  # when the condition began to hold: startsAt
    labels: dict[str, str]
    annotations: dict[str, str]  # rendered when it fired; reused when it resolves
    metric: str  # kept so it can resolve with a value after its rule is gone
    window: str
    threshold: float
    value: float | None = None  # at firing, so a re-sync repeats the event exactly
    sample_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "f": self.firing,
            "t": self.since_us,
            "l": self.labels,
            "a": self.annotations,
            "m": self.metric,
            "w": self.window,
            "th": self.threshold,
            "v": self.value,
            "n": self.sample_size,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> _Tracked:
        return cls(
            firing=bool(doc["f"]),
            since_us=int(doc["t"]),
            labels={str(k): str(v) for k, v in doc["l"].items()},
            annotations={str(k): str(v) for k, v in doc["a"].items()},
            metric=str(doc["m"]),
            window=str(doc["w"]),
            threshold=float(doc["th"]),
            value=None if doc.get("v") is None else float(doc["v"]),
            sample_size=int(doc.get("n", 0)),
        )

    def firing_event(self) -> AlertEvent:
        return AlertEvent(
            status="firing",
            labels=dict(self.labels),
            annotations=dict(self.annotations),
            starts_us=self.since_us,
            ends_us=None,
            value=self.value,
            threshold=self.threshold,
            sample_size=self.sample_size,
        )


@dataclass
class _Detractor:
    """An open detractor alert. Annotations are re-rendered from these inputs
    rather than stored, which keeps the book (a table value) small."""

    starts_us: int
    due_us: int
    labels: dict[str, str]
    score: int
    occurred_us: int
    comment: str
    ticket_id: str | None
    respondent_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": self.starts_us,
            "due": self.due_us,
            "l": self.labels,
            "s": self.score,
            "o": self.occurred_us,
            "c": self.comment,
            "tk": self.ticket_id,
            "r": self.respondent_id,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> _Detractor:
        return cls(
            starts_us=int(doc["t"]),
            due_us=int(doc["due"]),
            labels={str(k): str(v) for k, v in doc["l"].items()},
            score=int(doc["s"]),
            occurred_us=int(doc["o"]),
            comment=str(doc["c"]),
            ticket_id=None if doc.get("tk") is None else str(doc["tk"]),
            respondent_id=None if doc.get("r") is None else str(doc["r"]),
        )

    def annotations(self, cfg: DetractorConfig) -> dict[str, str]:
        dims = {k: v for k, v in self.labels.items() if k not in RESERVED_LABELS}
        fields: dict[str, Any] = {
            **dims,
            "alertname": self.labels["alertname"],
            "severity": self.labels["severity"],
            "score": self.score,
            "comment": self.comment,
            "event_id": self.labels["event_id"],
            "ticket_id": self.ticket_id or "none",
            "respondent_id": self.respondent_id or "none",
            "occurred_at": rfc3339(self.occurred_us),
            "dims": ", ".join(f"{k}={v}" for k, v in dims.items()),
        }
        out = {
            "summary": render_template(cfg.summary, fields),
            "description": render_template(cfg.description, fields),
            "comment": self.comment,
            "score": str(self.score),
            "occurred_at": rfc3339(self.occurred_us),
        }
        if self.ticket_id:
            out["ticket_id"] = self.ticket_id
        if self.respondent_id:
            out["respondent_id"] = self.respondent_id
        return out

    def event(self, status: Status, cfg: DetractorConfig, ends_us: int | None = None) -> AlertEvent:
        return AlertEvent(
            status=status,
            labels=dict(self.labels),
            annotations=self.annotations(cfg),
            starts_us=self.starts_us,
            ends_us=None if ends_us is None else max(ends_us, self.starts_us),
            value=float(self.score),
            threshold=DETRACTOR_THRESHOLD,
            sample_size=1,
        )


def _alert_labels(
    alertname: str, severity: str, window: str, dims: Mapping[str, str]
) -> dict[str, str]:
    # Reserved names come from the alert itself; a dimension of the same name
    # (a misconfiguration) must not change an alert's identity.
    labels = {"alertname": alertname, "severity": severity, "window": window}
    labels.update((k, v) for k, v in dims.items() if k not in RESERVED_LABELS)
    return labels


def _bounds_annotations(interval: Bounds, level: float) -> dict[str, str]:
    # Annotations are strings; repr keeps every digit of the float.
    return {
        "lower_bound": repr(interval.lower),
        "upper_bound": repr(interval.upper),
        "confidence": repr(level),
    }


def _rules_of(rules: RuleSet | Iterable[Rule]) -> tuple[tuple[Rule, ...], DetractorConfig]:
    if isinstance(rules, RuleSet):
        return rules.rules, rules.detractor
    return tuple(rules), DEFAULT_DETRACTOR


# ---------------------------------------------------------------------------
# The book
# ---------------------------------------------------------------------------


class AlertBook:
    """Alert state of one dims key."""

    def __init__(self) -> None:
        self._tracked: dict[str, _Tracked] = {}  # alertname -> pending/firing alert
        self._detractors: dict[str, _Detractor] = {}  # response event_id -> open alert

    # -- persistence ------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state; ``{}`` when there is nothing to remember."""
        if not self._tracked and not self._detractors:
            return {}
        return {
            "v": _BOOK_VERSION,
            "rules": {name: t.to_json() for name, t in sorted(self._tracked.items())},
            "detractors": {eid: d.to_json() for eid, d in sorted(self._detractors.items())},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any] | None) -> AlertBook:
        book = cls()
        if not doc:
            return book
        if doc.get("v") != _BOOK_VERSION:
            raise ValueError(f"unsupported alert book version {doc.get('v')!r}")
        book._tracked = {str(k): _Tracked.from_json(v) for k, v in doc.get("rules", {}).items()}
        book._detractors = {
            str(k): _Detractor.from_json(v) for k, v in doc.get("detractors", {}).items()
        }
        return book

    # -- threshold rules ---------------------------------------------------------

    def evaluate(
        self,
        rules: RuleSet | Iterable[Rule],
        labels: Mapping[str, str],
        snapshots: Mapping[str, WindowSnapshot],
        now_us: int,
        bounds: BoundsSource | None = None,
    ) -> list[AlertEvent]:
        """Advance every rule at ``now_us``; also resolves detractor alerts
        that are due. Returns the events to publish, in a deterministic order.
        ``bounds`` gives confidence intervals to ``confidence: true`` rules."""
        rule_list, detractor_cfg = _rules_of(rules)
        dims = dict(labels)
        events: list[AlertEvent] = []
        live: set[str] = set()
        for rule in rule_list:
            if not rule.applies_to(dims):
                continue
            live.add(rule.alertname)
            events.extend(self._step(rule, dims, snapshots, now_us, bounds))
        for name in sorted(set(self._tracked) - live):
            entry = self._tracked.pop(name)
            if entry.firing:  # its rule is gone or no longer covers this key
                events.append(self._resolved(entry, snapshots, now_us))
        events.extend(self._expire_detractors(detractor_cfg, now_us))
        return events

    def _step(
        self,
        rule: Rule,
        dims: Mapping[str, str],
        snapshots: Mapping[str, WindowSnapshot],
        now_us: int,
        bounds: BoundsSource | None,
    ) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        labels = _alert_labels(rule.alertname, rule.severity, rule.window, dims)
        entry = self._tracked.get(rule.alertname)
        if entry is not None and entry.labels != labels:
            # Same rule name, different identity (severity, window or dims
            # changed): end the old alert so nothing is left firing forever.
            del self._tracked[rule.alertname]
            if entry.firing:
                events.append(self._resolved(entry, snapshots, now_us))
            entry = None

        snap = snapshots.get(rule.window)
        value = None if snap is None else rule.value(snap)
        samples = 0 if snap is None else rule.sample_size(snap)
        interval = None
        if rule.confidence and snap is not None and bounds is not None:
            interval = bounds(rule.metric, snap)
        judged = rule.judged(value, interval)

        if entry is not None and entry.firing:
            if judged is None or rule.recovered(judged):
                del self._tracked[rule.alertname]
                events.append(self._resolved(entry, snapshots, now_us))
            return events

        breaching = judged is not None and samples >= rule.min_samples and rule.breaches(judged)
        if not breaching:
            self._tracked.pop(rule.alertname, None)  # a pending alert starts over
            return events
        if entry is None:
            entry = _Tracked(
                firing=False,
                since_us=now_us,
                labels=labels,
                annotations={},
                metric=rule.metric,
                window=rule.window,
                threshold=rule.threshold,
            )
            self._tracked[rule.alertname] = entry
        if now_us - entry.since_us >= rule.for_us:
            fields = rule.template_fields(dims, value, samples, interval)
            entry.firing = True
            entry.annotations = {
                "summary": render_template(rule.summary, fields),
                "description": render_template(rule.description, fields),
            }
            if interval is not None and bounds is not None:
                entry.annotations.update(_bounds_annotations(interval, bounds.level))
            entry.value = value
            entry.sample_size = samples
            events.append(entry.firing_event())
        return events

    @staticmethod
    def _resolved(
        entry: _Tracked, snapshots: Mapping[str, WindowSnapshot], now_us: int
    ) -> AlertEvent:
        snap = snapshots.get(entry.window)
        return AlertEvent(
            status="resolved",
            labels=dict(entry.labels),
            annotations=dict(entry.annotations),
            starts_us=entry.since_us,
            # Alertmanager rejects endsAt before startsAt (a clock step back).
            ends_us=max(now_us, entry.since_us),
            value=None if snap is None else metric_value(entry.metric, snap),
            threshold=entry.threshold,
            sample_size=0 if snap is None else metric_sample_size(entry.metric, snap),
        )

    # -- detractor alerts ---------------------------------------------------------

    def detractor(
        self,
        resp: SurveyResponse,
        labels: Mapping[str, str],
        now_us: int,
        cfg: DetractorConfig = DEFAULT_DETRACTOR,
    ) -> list[AlertEvent]:
        """A firing event for an NPS response of 0-6 with a comment, once per
        response ``event_id`` while its alert is open; otherwise nothing.

        When ``max_open`` alerts are already open for this key, the oldest
        resolves now to make room (its resolved event comes first).
        """
        comment = (resp.comment or "").strip()
        if (
            not cfg.enabled
            or resp.type != "survey.nps"
            or not 0 <= resp.score <= DETRACTOR_THRESHOLD
            or not comment
            or resp.event_id in self._detractors  # a replay of the same response
        ):
            return []
        events: list[AlertEvent] = []
        while len(self._detractors) >= cfg.max_open:
            oldest = min(self._detractors, key=lambda e: (self._detractors[e].starts_us, e))
            events.append(self._detractors.pop(oldest).event("resolved", cfg, now_us))
        entry = _Detractor(
            starts_us=now_us,
            due_us=now_us + cfg.resolve_after_us,
            labels={
                **_alert_labels(cfg.alertname, cfg.severity, DETRACTOR_WINDOW, labels),
                "event_id": resp.event_id,
            },
            score=resp.score,
            occurred_us=resp.occurred_us,
            comment=_cut(comment),
            ticket_id=resp.ticket_id,
            respondent_id=resp.respondent_id,
        )
        self._detractors[resp.event_id] = entry
        events.append(entry.event("firing", cfg))
        return events

    def _expire_detractors(self, cfg: DetractorConfig, now_us: int) -> list[AlertEvent]:
        due = sorted((d.due_us, eid) for eid, d in self._detractors.items() if d.due_us <= now_us)
        return [self._detractors.pop(eid).event("resolved", cfg, now_us) for _, eid in due]

    # -- reading ------------------------------------------------------------------

    def firing_count(self) -> dict[tuple[str, str], int]:
        """(alertname, severity) -> alerts firing now; for a gauge such as
        ``cx_alerts_firing``. Pending alerts do not count."""
        counts: dict[tuple[str, str], int] = {}
        entries = [t.labels for t in self._tracked.values() if t.firing]
        entries += [d.labels for d in self._detractors.values()]
        for lab in entries:
            key = (lab["alertname"], lab["severity"])
            counts[key] = counts.get(key, 0) + 1
        return counts

    #: The name the pipeline adapter has used; same as ``firing_count``.
    firing_counts = firing_count

    def firing_events(self, cfg: DetractorConfig = DEFAULT_DETRACTOR) -> list[AlertEvent]:
        """The ``firing`` event of every alert firing now, as it was first
        emitted, e.g. to re-send them all to Alertmanager after a partition
        moved to this worker (the forwarder ignores exact repeats)."""
        events = [t.firing_event() for _, t in sorted(self._tracked.items()) if t.firing]
        events += [d.event("firing", cfg) for _, d in sorted(self._detractors.items())]
        return events

    def __bool__(self) -> bool:
        return bool(self._tracked or self._detractors)


def _cut(comment: str) -> str:
    return comment if len(comment) <= MAX_COMMENT_CHARS else comment[: MAX_COMMENT_CHARS - 1] + "…"


def detractor_events(
    book: AlertBook,
    rules: RuleSet,
    labels: Mapping[str, str],
    response: SurveyResponse | Mapping[str, Any],
    now_us: int,
) -> list[AlertEvent]:
    """``book.detractor`` for the pipeline, which may pass the response as the
    dict it carries between stages (``event_id``, ``score``, ``occurred_us``,
    ``comment``, ``ticket_id``, ``respondent_id``; ``type`` defaults to NPS)."""
    if not isinstance(response, SurveyResponse):
        response = SurveyResponse(
            event_id=str(response["event_id"]),
            type=str(response.get("type", "survey.nps")),
            occurred_us=int(response["occurred_us"]),
            score=int(response["score"]),
            dims={},
            ticket_id=response.get("ticket_id"),
            comment=response.get("comment"),
            respondent_id=response.get("respondent_id"),
        )
    return book.detractor(response, labels, now_us, rules.detractor)
