"""The alert state machine of one dims key, and alert events.

Per rule: inactive -> (pending, while ``for`` runs) -> firing -> resolved.
One ``firing`` event when an alert starts, one ``resolved`` when it ends,
nothing in between. The book is a plain dict stored inside the key's
changelog-backed state, so a restart or a moved partition continues it
without repeating or losing an event.

Alert events follow Alertmanager's alert object (so they can be forwarded
as they are) plus ``fingerprint``, ``status``, ``value``, ``threshold`` and
``sample_size`` (schemas/alert-event.schema.json).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.domain.alert_rules import Rule, RuleSet
from streams.domain.model import US_PER_S, WindowSnapshot

DETRACTOR_WINDOW = "response"  # a per-response alert belongs to no rolling window


def rfc3339(us: int) -> str:
    return (
        dt.datetime.fromtimestamp(us // US_PER_S, dt.UTC)
        .replace(microsecond=us % US_PER_S)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable for the same label set (alertname included), across processes."""
    text = "\x1f".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class AlertEvent:
    status: str  # firing | resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_us: int
    ends_us: int | None
    value: float | None
    threshold: float | None
    sample_size: int | None

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "fingerprint": fingerprint(self.labels),
            "status": self.status,
            "labels": self.labels,
            "annotations": self.annotations,
            "startsAt": rfc3339(self.starts_us),
            "value": self.value,
            "threshold": self.threshold,
            "sample_size": self.sample_size,
        }
        if self.ends_us is not None:
            doc["endsAt"] = rfc3339(self.ends_us)
        return doc


def _render(template: str, fields: Mapping[str, Any]) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError, TypeError):
        return template  # a template that cannot render still says something


class AlertBook:
    """Alert state of one dims key: ``rules`` by alertname, ``responses`` by event id."""

    def __init__(
        self, rules: dict[str, dict[str, Any]], responses: dict[str, dict[str, Any]]
    ) -> None:
        self.rules = rules
        self.responses = responses

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> AlertBook:
        return cls(dict(doc.get("rules", {})), dict(doc.get("responses", {})))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.rules:
            out["rules"] = self.rules
        if self.responses:
            out["responses"] = self.responses
        return out

    def _labels(self, rule: Rule, labels: Mapping[str, str]) -> dict[str, str]:
        return {
            "alertname": rule.alertname,
            "severity": rule.severity,
            "window": rule.window,
            **labels,
        }

    def evaluate(
        self,
        ruleset: RuleSet,
        labels: Mapping[str, str],
        snapshots: Mapping[str, WindowSnapshot],
        now_us: int,
    ) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        active = {r.alertname for r in ruleset.rules}
        for rule in ruleset.rules:
            snap = snapshots.get(rule.window)
            if snap is None or not rule.matches(labels):
                continue
            value, samples = rule.read(snap)
            entry = self.rules.get(rule.alertname)
            state = None if entry is None else entry["state"]
            if state == "firing":
                assert entry is not None
                if rule.recovered(value, samples):
                    events.append(
                        self._event(rule, labels, entry, "resolved", value, samples, now_us)
                    )
                    del self.rules[rule.alertname]
                continue
            if not rule.breached(value, samples):
                self.rules.pop(rule.alertname, None)  # a pending condition that lapsed
                continue
            if state is None:
                entry = self.rules[rule.alertname] = {"state": "pending", "since": now_us}
            assert entry is not None
            if now_us - entry["since"] >= int(rule.for_s * US_PER_S):
                entry.update(state="firing", starts=now_us)
                events.append(self._event(rule, labels, entry, "firing", value, samples, now_us))
        # Rules removed from the configuration end their alerts cleanly.
        for name in [n for n in self.rules if n not in active]:
            entry = self.rules.pop(name)
            if entry["state"] == "firing":
                events.append(
                    AlertEvent(
                        "resolved",
                        entry["labels"],
                        entry["annotations"],
                        entry["starts"],
                        now_us,
                        None,
                        None,
                        None,
                    )
                )
        events.extend(self._expire_responses(now_us))
        return events

    def _event(
        self,
        rule: Rule,
        labels: Mapping[str, str],
        entry: dict[str, Any],
        status: str,
        value: float | None,
        samples: int,
        now_us: int,
    ) -> AlertEvent:
        full = self._labels(rule, labels)
        if status == "firing":
            fields = {
                **labels,
                "alertname": rule.alertname,
                "metric": rule.metric,
                "op": rule.op,
                "value": value,
                "threshold": rule.threshold,
                "window": rule.window,
                "sample_size": samples,
                "dims": ", ".join(f"{k}={v}" for k, v in labels.items()),
            }
            entry["labels"] = full
            entry["annotations"] = {
                "summary": _render(rule.summary, fields),
                "description": _render(rule.description, fields),
            }
        return AlertEvent(
            status,
            full,
            dict(entry.get("annotations", {})),
            entry["starts"],
            now_us if status == "resolved" else None,
            value,
            rule.threshold,
            samples,
        )

    # -- per-response alerts ------------------------------------------------------

    def detractor(
        self, ruleset: RuleSet, labels: Mapping[str, str], response: Mapping[str, Any], now_us: int
    ) -> list[AlertEvent]:
        """One info alert per NPS detractor response with a comment; ticket and
        respondent ids go in annotations (alert labels here, never Prometheus
        labels), the event id in a label so each response has its own
        fingerprint. It resolves ``resolve_after`` after the response arrived."""
        rule = ruleset.detractor
        event_id = str(response["event_id"])
        if not rule.enabled or event_id in self.responses:
            return []
        full = {
            "alertname": rule.alertname,
            "severity": rule.severity,
            "window": DETRACTOR_WINDOW,
            **labels,
            "event_id": event_id,
        }
        annotations = {
            "summary": f"NPS detractor ({response['score']}) on {labels.get('channel')}/{labels.get('team')}",
            "description": str(response.get("comment") or "")[:2000],
        }
        for key in ("ticket_id", "respondent_id"):
            if response.get(key):
                annotations[key] = str(response[key])
        starts = int(response.get("received_us") or now_us)
        self.responses[event_id] = {
            "labels": full,
            "annotations": annotations,
            "starts": starts,
            "due": starts + int(rule.resolve_after_s * US_PER_S),
            "score": response["score"],
        }
        return [
            AlertEvent("firing", full, annotations, starts, None, float(response["score"]), 6.0, 1)
        ]

    def _expire_responses(self, now_us: int) -> list[AlertEvent]:
        events = []
        for event_id in [k for k, v in self.responses.items() if v["due"] <= now_us]:
            entry = self.responses.pop(event_id)
            events.append(
                AlertEvent(
                    "resolved",
                    entry["labels"],
                    entry["annotations"],
                    entry["starts"],
                    now_us,
                    float(entry["score"]),
                    6.0,
                    1,
                )
            )
        return events

    def firing_documents(self) -> list[dict[str, Any]]:
        """Every alert firing now, as firing alert events (for re-posting)."""
        docs = []
        for entry in [*self.rules.values(), *self.responses.values()]:
            if entry.get("state", "firing") == "firing" and "labels" in entry:
                docs.append(
                    AlertEvent(
                        "firing",
                        entry["labels"],
                        entry["annotations"],
                        entry["starts"],
                        None,
                        None,
                        None,
                        None,
                    ).to_dict()
                )
        return docs

    def firing_counts(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        for entry in [*self.rules.values(), *self.responses.values()]:
            if entry.get("state", "firing") == "firing" and "labels" in entry:
                key = (entry["labels"]["alertname"], entry["labels"]["severity"])
                counts[key] = counts.get(key, 0) + 1
        return counts
