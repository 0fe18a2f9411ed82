"""Stage 3: per-dims-key rolling windows and counters. Where numbers are kept.

Reads the observations topic (keyed by dims), applies observations to the
key's ``DimsState`` (one coalesced table write per key per batch), and runs
the alert rules on change and on timer ticks, inside the partition's own
agent so alert state is written to the same changelog partition.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol

import orjson

from streams.domain.model import WindowSpec
from streams.domain.windows import DimsState
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.pipeline.envelope import TICK_KEY, decode_batch, dims_from_key
from streams.pipeline.records import Record
from streams.settings import Settings

log = logging.getLogger(__name__)

SendAlert = Callable[[bytes, bytes], Awaitable[Any]]
SendRecordDeadletter = Callable[[Record, str, str], Awaitable[Any]]


class Alerter(Protocol):
    """Evaluates alert rules for one dims key; returns alert event documents
    (contract section 6) and updates the state's alert book in place."""

    def evaluate(
        self, dims: tuple[str, ...], state: DimsState, now_us: int
    ) -> list[dict[str, Any]]: ...

    def detractor(
        self, dims: tuple[str, ...], state: DimsState, response: dict[str, Any], now_us: int
    ) -> list[dict[str, Any]]: ...

    def firing(self, state: DimsState) -> dict[tuple[str, str], int]:
        """(alertname, severity) -> alerts firing for this key."""
        ...


class StateCache:
    """Decoded DimsState per key, valid while the table still holds the very
    bytes object it was decoded from (so a changelog recovery or a write by
    anyone else invalidates it automatically)."""

    def __init__(self, windows: Sequence[WindowSpec]) -> None:
        self._windows = windows
        self._cache: dict[bytes, tuple[bytes, DimsState]] = {}

    def get(self, key: bytes, raw: bytes) -> DimsState:
        hit = self._cache.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        state = DimsState.from_bytes(raw, self._windows)
        self._cache[key] = (raw, state)
        return state

    def put(self, key: bytes, raw: bytes, state: DimsState) -> None:
        self._cache[key] = (raw, state)

    def drop(self, key: bytes) -> None:
        self._cache.pop(key, None)

    def prune(self, live: set[bytes]) -> None:
        for key in [k for k in self._cache if k not in live]:
            del self._cache[key]


class AggregateStage:
    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics,
        table: MutableMapping[bytes, bytes],
        alerter: Alerter,
        send_alert: SendAlert,
        now_us: Callable[[], int],
        send_deadletter: SendRecordDeadletter | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.table = table
        self.alerter = alerter
        self._send_alert = send_alert
        self._send_deadletter_cb = send_deadletter
        self._now_us = now_us
        self.cache = StateCache(settings.windows)

    def _load(self, key: bytes) -> DimsState | None:
        raw = self.table.get(key)
        return None if raw is None else self.cache.get(key, raw)

    def _new(self, key: bytes) -> DimsState:
        return DimsState.new(dims_from_key(key), self.settings.windows)

    async def handle_batch(self, records: Sequence[Record]) -> None:
        now = self._now_us()
        touched: dict[bytes, DimsState] = {}
        alerts: list[dict[str, Any]] = []
        ticks: list[int] = []
        applied: dict[bytes, list[Record]] = {}  # this batch's records per key, for _rebuild
        for rec in records:
            if rec.key == TICK_KEY:
                ticks.append(rec.partition)
                continue
            if rec.key is None or rec.value is None:
                continue
            key = rec.key
            state = touched.get(key)
            if state is None:
                state = self._load(key)
            if state is None:
                state = self._new(key)
            if rec.partition == state.partition and rec.offset <= state.source_offset:
                self.metrics.replays_skipped.labels("aggregate").inc()
                continue
            try:
                alerts.extend(self._apply_record(key, state, rec, now))
            except Exception as exc:  # a bug: keep the record, say why, go on
                log.exception("processing_error in the aggregate stage at offset %d", rec.offset)
                state = self._rebuild(key, applied.get(key, []), now)
                await self._send_deadletter(
                    rec, "processing_error", f"{type(exc).__name__}: {exc}"[:300]
                )
            else:
                applied.setdefault(key, []).append(rec)
            state.partition = rec.partition
            state.source_offset = rec.offset
            touched[key] = state

        for key, state in touched.items():
            alerts.extend(self.alerter.evaluate(dims_from_key(key), state, now))
            self._write(key, state)
        # Timer ticks: windows slide without events. Evaluate every owned key;
        # write only the keys whose alert book changed (coalesced writes: a
        # tick must not rewrite every state every few seconds).
        # The timer ticks every partition at once: one pass over the table
        # serves all the partitions ticked in this batch.
        for key, state in self._owned(set(ticks)):
            if key in touched:
                continue
            state.expire(now)
            before = _dumps(state.alerts)
            alerts.extend(self.alerter.evaluate(dims_from_key(key), state, now))
            if _dumps(state.alerts) != before:
                self._write(key, state)
        for doc in alerts:
            await self._send_alert(doc["fingerprint"].encode(), _dumps(doc))
        self.metrics.stage_batches.labels("aggregate").inc()

    def _apply_record(
        self, key: bytes, state: DimsState, rec: Record, now: int
    ) -> list[dict[str, Any]]:
        assert rec.value is not None
        observations, detractors = decode_batch(rec.value)
        for obs in observations:
            state.apply(obs, now)
        dims = dims_from_key(key)
        alerts: list[dict[str, Any]] = []
        for response in detractors:
            alerts.extend(self.alerter.detractor(dims, state, response, now))
        return alerts

    def _rebuild(self, key: bytes, good: list[Record], now: int) -> DimsState:
        """After a failed record: the key's state as of the batch start (the
        table still holds it: writes happen after the batch) plus this batch's
        records that did apply. Costs nothing unless a record fails; their
        alerts were already collected, so the re-run's are discarded."""
        self.cache.drop(key)  # the cached object was changed in place
        raw = self.table.get(key)
        state = self._new(key) if raw is None else DimsState.from_bytes(raw, self.settings.windows)
        for rec in good:
            self._apply_record(key, state, rec, now)
            state.partition, state.source_offset = rec.partition, rec.offset
        return state

    async def _send_deadletter(self, rec: Record, reason: str, detail: str) -> None:
        self.metrics.stage_errors.labels("aggregate").inc()
        if self._send_deadletter_cb is not None:
            await self._send_deadletter_cb(rec, reason, detail)

    def _write(self, key: bytes, state: DimsState) -> None:
        raw = state.to_bytes()
        self.table[key] = raw
        self.cache.put(key, raw, state)
        self.metrics.table_writes.labels("windows").inc()

    def _owned(self, partitions: set[int]) -> Iterator[tuple[bytes, DimsState]]:
        if not partitions:
            return
        for key, raw in list(self.table.items()):
            state = self.cache.get(key, raw)
            if state.partition in partitions:
                yield key, state

    def snapshot_states(self, active_partitions: set[int]) -> Iterator[tuple[bytes, DimsState]]:
        """States this worker publishes: active partitions only, never standbys."""
        live: set[bytes] = set()
        for key, raw in list(self.table.items()):
            live.add(key)
            state = self.cache.get(key, raw)
            if state.partition in active_partitions:
                yield key, state
        self.cache.prune(live)


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
