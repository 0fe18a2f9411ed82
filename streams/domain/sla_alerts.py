"""The ``CxSlaAtRisk`` alert (contract 8.3): at least one pending SLA target
``at_risk`` for a ``(channel, team, target)``, ``value`` = their number; it
resolves when none is. Pure.

It reads the ``cx_sla_pending`` gauge of one dims key (summed over
priorities), not a rolling window, so it is not a threshold rule: its state
is a small book of its own, ``target -> firing alert``, persisted beside the
rule alerts in the key's meta row. One ``firing`` event when the first
target becomes at risk, one ``resolved`` when the last one leaves (met,
breached or gone); a changing count while it fires repeats nothing. Its
``window`` label is ``now`` (the gauge is an instant, not a window).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from streams.domain.alerting import AlertEvent
from streams.domain.model import SLA_TARGETS
from streams.domain.rules.defaults import SlaAtRiskRule
from streams.domain.rules.model import RESERVED_LABELS

__all__ = ["SLA_WINDOW", "at_risk_counts", "evaluate_sla_alerts", "sla_firing"]

SLA_WINDOW: Final = "now"


def at_risk_counts(pending: Mapping[tuple[str, str, str], int]) -> dict[str, int]:
    """target -> pending targets ``at_risk`` (over every priority)."""
    out = dict.fromkeys(SLA_TARGETS, 0)
    for (_, target, state), n in pending.items():
        if state == "at_risk" and target in out:
            out[target] += n
    return out


def _labels(rule: SlaAtRiskRule, dims: Mapping[str, str], target: str) -> dict[str, str]:
    labels = {"alertname": rule.alertname, "severity": rule.severity, "window": SLA_WINDOW}
    labels.update((k, v) for k, v in dims.items() if k not in RESERVED_LABELS | {"target"})
    labels["target"] = target
    return labels


def _event(doc: Mapping[str, Any], status: str, ends_us: int | None, value: float) -> AlertEvent:
    return AlertEvent(
        status=status,  # type: ignore[arg-type]
        labels=dict(doc["l"]),
        annotations=dict(doc["a"]),
        starts_us=int(doc["t"]),
        ends_us=ends_us,
        value=value,
        threshold=1.0,
        sample_size=int(doc["n"]),
    )


def evaluate_sla_alerts(
    rule: SlaAtRiskRule,
    book: Mapping[str, Any],
    dims: Mapping[str, str],
    at_risk: Mapping[str, int],
    now_us: int,
) -> tuple[dict[str, Any], list[AlertEvent]]:
    """The new book and the events to publish. ``book``: target -> the
    firing alert (``{"t": startsAt, "l": labels, "a": annotations, "n": count at firing}``)."""
    out = {k: dict(v) for k, v in book.items()}
    events: list[AlertEvent] = []
    for target in SLA_TARGETS:
        n = at_risk.get(target, 0)
        entry = out.get(target)
        if entry is None and n > 0:
            labels = _labels(rule, dims, target)
            entry = {"t": now_us, "l": labels, "a": rule.annotations(dims, target, n), "n": n}
            out[target] = entry
            events.append(_event(entry, "firing", None, float(n)))
        elif entry is not None and n <= 0:
            del out[target]
            events.append(_event(entry, "resolved", max(now_us, int(entry["t"])), 0.0))
    return out, events


def sla_firing(book: Mapping[str, Any]) -> list[AlertEvent]:
    """The firing events of the book (re-posted to Alertmanager)."""
    return [_event(e, "firing", None, float(e["n"])) for _, e in sorted(book.items())]
