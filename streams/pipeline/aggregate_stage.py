"""Stage 3: per-dims-key rolling windows and counters. Where numbers are kept.

Reads the observations topic (keyed by dims), applies observations to the
key's ``DimsState`` and runs the alert rules on change and on timer ticks,
inside the partition's own agent so alert state is written to the same
changelog partition.

The states of the partitions this worker owns live in memory, decoded once:
they are built from the table's rows after every assignment (when Faust has
recovered the table) and kept in step by this stage, their only writer.
After a batch, each touched state writes only the rows that changed (the
table is a ``RowTable``). Scrapes and ticks read the in-memory states and
their cached snapshots; nothing decodes rows on the hot path.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol

import orjson

from streams.domain.windows import META_ROW, DimsState
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.pipeline.envelope import TICK_KEY, decode_batch, dims_from_key
from streams.pipeline.records import Record
from streams.pipeline.tables import key_partition, row_key, split_row_key
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
        recovered: Callable[[], bool] = lambda: True,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.table = table
        self.alerter = alerter
        self._send_alert = send_alert
        self._send_deadletter_cb = send_deadletter
        self._now_us = now_us
        self._recovered = recovered
        self._partitions = settings.partitions
        self._states: dict[bytes, DimsState] = {}
        self._built = False  # _states reflects the table since the last assignment

    # -- the in-memory states ------------------------------------------------

    def assign(self, partitions: set[int] | None = None) -> None:
        """The worker's assignment changed: states are rebuilt from the table
        at the next use, once recovered (while a partition was elsewhere,
        another worker may have changed it). Every key the table holds is
        loaded, standby copies too, so no partition is ever missed because
        the assignment was read at the wrong moment; only active partitions
        are published."""
        self._built = False
        self._states.clear()

    def _ensure_built(self, force: bool = False) -> bool:
        if self._built:
            return True
        if not force and not self._recovered():
            return False
        grouped: dict[bytes, list[tuple[bytes, bytes]]] = defaultdict(list)
        for key, raw in list(self.table.items()):
            owner, row_id = split_row_key(key)
            grouped[owner].append((row_id, raw))
        self._states = {
            owner: DimsState.from_rows(dims_from_key(owner), rows, self.settings.windows)
            for owner, rows in grouped.items()
        }
        self._built = True
        log.info(
            "windows: %d keys loaded from %d rows",
            len(self._states),
            sum(map(len, grouped.values())),
        )
        return True

    def _state(self, key: bytes) -> DimsState:
        state = self._states.get(key)
        if state is None:
            # A key the table holds but memory does not (its partition was
            # recovered after the build) is loaded, never started afresh:
            # a fresh state would overwrite the stored one.
            if row_key(key, META_ROW) in self.table:
                state = self._reload(key)
            else:
                state = DimsState.new(dims_from_key(key), self.settings.windows)
            self._states[key] = state
        return state

    def _reload(self, key: bytes) -> DimsState:
        """The key's state as the table holds it (rows are written after a
        batch, so: as of the batch start)."""
        rows = [
            (row_id, raw)
            for k, raw in list(self.table.items())
            for owner, row_id in [split_row_key(k)]
            if owner == key
        ]
        if not rows:
            return DimsState.new(dims_from_key(key), self.settings.windows)
        return DimsState.from_rows(dims_from_key(key), rows, self.settings.windows)

    # -- batches -------------------------------------------------------------

    async def handle_batch(self, records: Sequence[Record]) -> None:
        # Faust hands the agent records only once the table is recovered.
        self._ensure_built(force=True)
        now = self._now_us()
        touched: dict[bytes, DimsState] = {}
        alerts: list[dict[str, Any]] = []
        ticks: set[int] = set()
        applied: dict[bytes, list[Record]] = {}  # this batch's records per key, for _rebuild
        for rec in records:
            if rec.key == TICK_KEY:
                ticks.add(rec.partition)
                continue
            if rec.key is None or rec.value is None:
                continue
            key = rec.key
            state = self._state(key)
            try:
                fresh, found = self._apply_record(key, state, rec, now)
            except Exception as exc:  # a bug: keep the record, say why, go on
                log.exception("processing_error in the aggregate stage at offset %d", rec.offset)
                state = self._rebuild(key, applied.get(key, []), now)
                await self._send_deadletter(
                    rec, "processing_error", f"{type(exc).__name__}: {exc}"[:300]
                )
            else:
                applied.setdefault(key, []).append(rec)
                alerts.extend(found)
                if not fresh:
                    self.metrics.replays_skipped.labels("aggregate").inc()
            state.partition = rec.partition
            state.source_offset = max(state.source_offset, rec.offset)
            touched[key] = state

        for key, state in touched.items():
            alerts.extend(self.alerter.evaluate(dims_from_key(key), state, now))
        # Timer ticks: windows slide without events. Evaluate every owned key
        # of the ticked partitions (the timer ticks every partition at once).
        if ticks:
            for key, state in self._states.items():
                if key in touched or key_partition(key, self._partitions) not in ticks:
                    continue
                state.expire(now)
                alerts.extend(self.alerter.evaluate(dims_from_key(key), state, now))
                touched[key] = state
        # Alert events are delivered before the alert book that produced them
        # is written: a crash in between repeats an event, never loses one.
        pending = [await self._send_alert(d["fingerprint"].encode(), _dumps(d)) for d in alerts]
        for result in pending:
            if inspect.isawaitable(result):
                await result
        for key, state in touched.items():
            self._write(key, state)
        self.metrics.stage_batches.labels("aggregate").inc()

    def _apply_record(
        self, key: bytes, state: DimsState, rec: Record, now: int
    ) -> tuple[bool, list[dict[str, Any]]]:
        """Apply one observations record: whether anything in it was new, and
        its alert events. Each row judges replayed observations by itself; the
        detractor alerts ride on the meta row, judged by its source offset."""
        assert rec.value is not None
        observations, detractors = decode_batch(rec.value)
        fresh = not observations
        for obs in observations:
            fresh |= state.apply(obs, now)
        if rec.partition == state.partition and rec.offset <= state.source_offset:
            return fresh, []  # its detractor alerts were raised the first time
        dims = dims_from_key(key)
        alerts: list[dict[str, Any]] = []
        for response in detractors:
            alerts.extend(self.alerter.detractor(dims, state, response, now))
        return fresh, alerts

    def _rebuild(self, key: bytes, good: list[Record], now: int) -> DimsState:
        """After a failed record: the key's state as of the batch start plus
        this batch's records that did apply. Costs nothing unless a record
        fails; their alerts were already collected, so the re-run's are
        discarded."""
        state = self._reload(key)
        for rec in good:
            self._apply_record(key, state, rec, now)
            state.partition = rec.partition
            state.source_offset = max(state.source_offset, rec.offset)
        self._states[key] = state
        return state

    async def _send_deadletter(self, rec: Record, reason: str, detail: str) -> None:
        self.metrics.stage_errors.labels("aggregate").inc()
        if self._send_deadletter_cb is not None:
            await self._send_deadletter_cb(rec, reason, detail)

    def _write(self, key: bytes, state: DimsState) -> None:
        upserts, deletes = state.take_changes()
        for row_id, raw in upserts.items():
            self.table[row_key(key, row_id)] = raw
        for row_id in deletes:
            self.table.pop(row_key(key, row_id), None)
        if upserts or deletes:
            self.metrics.table_writes.labels("windows").inc(len(upserts) + len(deletes))

    # -- reading -------------------------------------------------------------

    def snapshot_states(self, active_partitions: set[int]) -> Iterator[tuple[bytes, DimsState]]:
        """States this worker publishes: active partitions only, never
        standbys, and nothing while the table is still recovering."""
        if not self._ensure_built():
            return
        for key, state in list(self._states.items()):
            if key_partition(key, self._partitions) in active_partitions:
                yield key, state


def _dumps(doc: Any) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
