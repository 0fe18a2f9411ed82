"""Alert rules inside the stream processor.

The aggregate stage calls ``RuleAlerter`` for each dims key it owns, on every
change and on timer ticks; the alert book lives inside the key's table value
(changelog-backed), so a restart or a moved partition neither loses nor
repeats an alert. Events go to the alerts topic and, with ``--alertmanager``,
to Alertmanager.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.alertmanager import AlertmanagerForwarder
from streams.domain.alerting import AlertBook, AlertEvent, detractor_events
from streams.domain.confidence import WindowBounds
from streams.domain.rules import RuleSet, default_ruleset, load_rules
from streams.domain.rules.defaults import DEFAULT_SLA_AT_RISK, SlaAtRiskRule
from streams.domain.schedules import SchedulesConfig
from streams.domain.sla_alerts import at_risk_counts, evaluate_sla_alerts, sla_firing
from streams.domain.windows import DimsState
from streams.errors import RulesError, SettingsError
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.settings import Settings


class RuleAlerter:
    def __init__(
        self,
        rules: RuleSet,
        dimensions: Sequence[str],
        forwarder: AlertmanagerForwarder | None = None,
        bounds: WindowBounds | None = None,
        sla_at_risk: SlaAtRiskRule | None = None,
    ) -> None:
        self.rules = rules
        self.bounds = bounds if bounds is not None else WindowBounds()
        self.sla_at_risk = sla_at_risk  # on only when SLA policies exist
        self.dimensions = tuple(dimensions)
        self.forwarder = forwarder
        self.metrics: PipelineMetrics | None = None

    def _labels(self, dims: tuple[str, ...]) -> dict[str, str]:
        return dict(zip(self.dimensions, dims, strict=True))

    def _emit(self, events: list[AlertEvent]) -> list[dict[str, Any]]:
        docs = [e.to_dict() for e in events]
        if self.metrics is not None:
            for doc in docs:
                labels = doc["labels"]
                self.metrics.alerts.labels(
                    labels["alertname"], labels["severity"], doc["status"]
                ).inc()
        return docs

    def evaluate(
        self, dims: tuple[str, ...], state: DimsState, now_us: int
    ) -> list[dict[str, Any]]:
        book = AlertBook.from_dict(state.alerts)
        snapshots = {snap.window: snap for snap in state.windows(now_us)}
        events = book.evaluate(self.rules, self._labels(dims), snapshots, now_us, self.bounds)
        state.alerts = book.to_dict()
        if self.sla_at_risk is not None:
            at_risk = at_risk_counts(state.sla_pending)
            state.sla_alerts, sla_events = evaluate_sla_alerts(
                self.sla_at_risk, state.sla_alerts, self._labels(dims), at_risk, now_us
            )
            events.extend(sla_events)
        if self.forwarder is not None:
            # Alerts firing in state are (re-)posted even when this process did
            # not emit them (it took the partition over); repeats are ignored.
            for event in book.firing_events(self.rules.detractor):
                self.forwarder.submit(event.to_dict())
            for event in sla_firing(state.sla_alerts):
                self.forwarder.submit(event.to_dict())
        return self._emit(events)

    def detractor(
        self, dims: tuple[str, ...], state: DimsState, response: dict[str, Any], now_us: int
    ) -> list[dict[str, Any]]:
        book = AlertBook.from_dict(state.alerts)
        events = detractor_events(book, self.rules, self._labels(dims), response, now_us)
        state.alerts = book.to_dict()
        return self._emit(events)

    def firing(self, state: DimsState) -> dict[tuple[str, str], int]:
        out = AlertBook.from_dict(state.alerts).firing_count()
        for event in sla_firing(state.sla_alerts):
            key = (event.alertname, event.severity)
            out[key] = out.get(key, 0) + 1
        return out


def build_alerter(
    settings: Settings, schedules: SchedulesConfig | None = None
) -> tuple[RuleAlerter, AlertmanagerForwarder | None]:
    """Rules from --rules (or the built-in defaults); errors name the file and
    line. CxSlaAtRisk is on when the schedules file has SLA policies."""
    window_names = [w.name for w in settings.windows]
    if settings.rules is None:
        rules = default_ruleset(window_names)
    else:
        try:
            rules = load_rules(str(settings.rules), window_names)
        except RulesError as exc:
            raise SettingsError(f"--rules / CX_RULES: {exc}") from None
    forwarder = None
    if settings.alertmanager_url:
        forwarder = AlertmanagerForwarder(settings.alertmanager_url)
    sla_rule = DEFAULT_SLA_AT_RISK if schedules is not None and schedules.sla is not None else None
    alerter = RuleAlerter(
        rules, settings.dimensions, forwarder, WindowBounds(settings.confidence), sla_rule
    )
    return alerter, forwarder
