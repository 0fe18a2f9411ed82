"""Counters of what happened to input records in *this* worker process.

They are additive across workers (sum them in PromQL) and reset when a worker
restarts, as Prometheus counters do; ``rate()`` handles that.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streams.domain.model import REASONS


class PipelineMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "cx_events",
            "Input records by outcome: accepted, duplicate (event_id seen) or invalid.",
            ["source", "outcome"],
            registry=registry,
        )
        self.invalid = Counter(
            "cx_events_invalid",
            "Input records rejected to the dead-letter topic, by reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.late = Counter(
            "cx_events_late",
            "Valid events older than the longest window when processed (outside every window).",
            ["source"],
            registry=registry,
        )
        self.alerts = Counter(
            "cx_alerts",
            "Alert events emitted on the alerts topic, by status.",
            ["alertname", "severity", "status"],
            registry=registry,
        )
        self.deadletter_failures = Counter(
            "cx_deadletter_send_failures",
            "Dead-letter records that could not be produced (the worker stops rather than lose them).",
            registry=registry,
        )
        self.stage_batches = Counter(
            "cx_stage_batches",
            "Batches processed per pipeline stage (coalesced table writes happen once per key per batch).",
            ["stage"],
            registry=registry,
        )
        self.table_writes = Counter(
            "cx_table_writes",
            "Changelog-backed table writes per table, after coalescing.",
            ["table"],
            registry=registry,
        )
        self.replays_skipped = Counter(
            "cx_replays_skipped",
            "Internal records ignored because their effect was already applied (at-least-once replay).",
            ["stage"],
            registry=registry,
        )
        self.stage_errors = Counter(
            "cx_stage_errors",
            "Internal records a stage could not apply (a bug); dead-lettered, not lost.",
            ["stage"],
            registry=registry,
        )
        self.assigned = Gauge(
            "cx_worker_assigned_partitions",
            "Partitions of the observations topic this worker owns as active.",
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "cx_consumer_lag",
            "Records not yet committed by this worker per assigned input or internal "
            "topic partition (end offset - committed offset).",
            ["topic", "partition"],
            registry=registry,
        )
        self.state_recovering = Gauge(
            "cx_state_recovering",
            "1 while this worker recovers its tables from their changelogs (numbers catching up).",
            registry=registry,
        )
        self._outcomes: dict[tuple[str, str], Counter] = {}
        self._prime()

    def outcome(self, source: str, outcome: str) -> None:
        """One input record applied or found a duplicate. Runs for every
        event: the labelled child is looked up once (``labels()`` validates
        and locks on every call)."""
        child = self._outcomes.get((source, outcome))
        if child is None:
            child = self._outcomes[(source, outcome)] = self.events.labels(source, outcome)
        child.inc()

    def rejected(self, source: str, reason: str) -> None:
        """One input record dead-lettered: counted as an invalid outcome and by reason."""
        self.events.labels(source, "invalid").inc()
        self.invalid.labels(source, reason).inc()

    def _prime(self) -> None:
        # Pre-create the series dashboards expect, so they read 0 instead of absent.
        for source in ("tickets", "surveys"):
            for outcome in ("accepted", "duplicate", "invalid"):
                self.events.labels(source, outcome)
            self.late.labels(source)
            for reason in REASONS:
                self.invalid.labels(source, reason)
