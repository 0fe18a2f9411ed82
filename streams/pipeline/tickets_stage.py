"""Stage 2: per-ticket state. Where a ticket's numbers are derived.

Reads the route topic (keyed by ticket id, or event id for unlinked surveys)
and the input records that already sit in their ticket's partition (handed
over by ingest, validated), applies each event to that key's ``RouteState``
and emits ``Observation``s to the observations topic keyed by dims, one
record per dims key per batch. Table writes are coalesced: one write per key
per batch. Both paths run under one lock, so a key's state has one writer.

Replays are harmless. Each observation's id is its record's position
(``partition:offset:index``, the partition part distinct per source topic),
so a replayed record yields the same ids and the aggregate stage (one
high-water mark per position partition) ignores them. Observations are
delivered *before* the state that produced them is written: a persisted
state never stands for observations that were lost, and a record at or
below the state's last applied offset for its topic is skipped outright.

With a schedules file, the sweep is also the SLA clock: each ticket state's
pending targets are judged against the tick's time (carried in the tick
record, so a replayed tick judges the same), and the SLA gauges' deltas go
out like the close observations, before the changed states are written.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from streams.domain.dimensions import DimensionCap
from streams.domain.model import US_PER_S, Event, Observation, Rejection, SurveyResponse
from streams.domain.schedules import SchedulesConfig
from streams.domain.schedules_file import load_schedules
from streams.domain.ticket_state import RouteState
from streams.domain.validation import decode, is_late
from streams.domain.windows import obs_id
from streams.errors import SchedulesError, SettingsError
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.pipeline.envelope import TICK_KEY, Provenance, dims_key, encode_batch
from streams.pipeline.records import Record
from streams.settings import Settings

log = logging.getLogger(__name__)

SendObservations = Callable[[bytes, bytes], Awaitable[Any]]
SendDeadletter = Callable[[Provenance, bytes | None, str, str], Awaitable[Any]]


class TicketStage:
    def __init__(
        self,
        settings: Settings,
        metrics: PipelineMetrics,
        table: MutableMapping[bytes, bytes],
        send_observations: SendObservations,
        send_deadletter: SendDeadletter,
        now_us: Callable[[], int],
        schedules: SchedulesConfig | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.table = table
        self.cap = DimensionCap(settings.dimensions, settings.max_label_values)
        self._send_observations = send_observations
        self._send_deadletter = send_deadletter
        self._now_us = now_us
        self._dedup_us = int(settings.dedup_horizon_s * US_PER_S)
        self._retention_us = int(settings.ticket_retention_s * US_PER_S)
        self._lock = asyncio.Lock()
        self.schedules = schedules

    def _load(self, key: bytes) -> RouteState:
        raw = self.table.get(key)
        return RouteState.new() if raw is None else RouteState.from_bytes(raw)

    async def handle_batch(self, records: Sequence[Record]) -> None:
        async with self._lock:
            await self._handle_batch(records)

    async def _handle_batch(self, records: Sequence[Record]) -> None:
        states: dict[bytes, RouteState] = {}
        dirty: set[bytes] = set()
        out: dict[bytes, list[Observation]] = defaultdict(list)
        detractors: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
        ticks: list[tuple[int, int, int | None]] = []

        for rec in records:
            if rec.key == TICK_KEY:
                ticks.append((rec.partition, rec.offset, _tick_time(rec.value)))
                continue
            if rec.key is None:  # cannot happen: ingest always keys route records
                continue
            key = rec.key
            before: bytes | None = None
            event: Event | Rejection
            if rec.prepared is not None:
                prov, event = rec.prepared
            else:
                prov = Provenance.from_headers(rec.headers)
            try:
                if rec.prepared is None:
                    event = decode(
                        rec.value,
                        "tickets" if prov.source == "tickets" else "surveys",
                        prov.received_us,
                        dimensions=self.settings.dimensions,
                    )
                if isinstance(event, Rejection):
                    # Only if validation rules changed between ingest and here.
                    self.metrics.rejected(prov.source, event.reason)
                    await self._send_deadletter(prov, rec.value, event.reason, event.detail)
                    continue
                state = states.get(key)
                loaded = state is None
                if state is None:
                    state = self._load(key)
                if rec.partition == state.partition and rec.offset <= state.offsets.get(
                    rec.space, -1
                ):
                    # Already applied and persisted (with its observations
                    # delivered first): an at-least-once replay.
                    self.metrics.replays_skipped.labels("tickets").inc()
                    states[key] = state
                    continue
                # A bug in apply() may leave the state half-changed: the rest
                # of the batch must continue from the state before the event.
                # A state loaded for this event is still in the table (tables
                # are written after the batch); one changed earlier in this
                # batch is kept as bytes first (rarer: a ticket's events are
                # usually minutes apart).
                if not loaded:
                    before = state.to_bytes()
                state.expire(prov.received_us, dedup_horizon_us=self._dedup_us)
                if isinstance(event, SurveyResponse):
                    outcome = state.apply_survey(event, prov.received_us, self.cap)
                else:
                    outcome = state.apply_ticket(
                        event,
                        prov.received_us,
                        self.cap,
                        self.schedules,
                        self.settings.sla_warning,
                    )
            except Exception as exc:  # a bug: keep the event, say why, go on
                log.exception(
                    "processing_error on %s/%d@%d", prov.topic, prov.partition, prov.offset
                )
                if before is not None:
                    states[key] = RouteState.from_bytes(before)
                # else: this state was loaded for the event and is not in
                # ``states``, so the key's next event loads it afresh.
                self.metrics.rejected(prov.source, "processing_error")
                await self._send_deadletter(
                    prov, rec.value, "processing_error", f"{type(exc).__name__}: {exc}"[:300]
                )
                continue
            states[key] = state
            state.partition = rec.partition
            state.offsets[rec.space] = max(state.offsets.get(rec.space, -1), rec.offset)
            dirty.add(key)
            self.metrics.outcome(prov.source, outcome.status)
            if outcome.status != "accepted":
                continue  # a duplicate has no effect, and is not late either
            if is_late(event.occurred_us, prov.received_us, self.settings.longest_window_us):
                self.metrics.late.labels(prov.source).inc()
            position = rec.position_partition
            for index, obs in enumerate(outcome.observations):
                stamped = obs.with_id(obs_id(position, rec.offset, index))
                out[dims_key(obs.dims)].append(stamped)
            if (
                outcome.status == "accepted"
                and isinstance(event, SurveyResponse)
                and event.type == "survey.nps"
                and event.score <= 6
                and event.comment
                and outcome.observations
            ):
                detractors[dims_key(outcome.observations[0].dims)].append(
                    {
                        "event_id": event.event_id,
                        "score": event.score,
                        "occurred_us": event.occurred_us,
                        "received_us": prov.received_us,
                        "comment": event.comment,
                        "ticket_id": event.ticket_id,
                        "respondent_id": event.respondent_id,
                    }
                )

        # Deliver first, then persist: a written state never stands for
        # observations that were lost in a crash.
        pending = [
            await self._send_observations(
                dkey, encode_batch(out.get(dkey, []), detractors.get(dkey, []))
            )
            for dkey in sorted(out.keys() | detractors.keys())
        ]
        await _delivered(pending)
        for key in dirty:
            self.table[key] = states[key].to_bytes()
            self.metrics.table_writes.labels("tickets").inc()
        if ticks:
            # The timer ticks every partition at once: one sweep, one pass
            # over the table, serves every partition ticked in this batch.
            due: dict[int, tuple[int, int | None]] = {}
            for partition, offset, at in ticks:
                if offset > due.get(partition, (-1, None))[0]:
                    due[partition] = (offset, at)
            await self._sweep(due, states)
        self.metrics.stage_batches.labels("tickets").inc()

    async def _sweep(
        self, due: dict[int, tuple[int, int | None]], fresh: dict[bytes, RouteState]
    ) -> None:
        """Drop expired ticket states of the ticked partitions (finished
        tickets, orphans, seen ids past the dedup horizon): memory stays
        bounded; and move pending SLA targets on by the clock. ``due`` maps
        each ticked partition to its tick's offset, which (with a running
        index) gives the observations their ids, and the tick's time."""
        wall = self._now_us()
        out: dict[bytes, list[Observation]] = defaultdict(list)
        expired: list[bytes] = []
        changed: dict[bytes, RouteState] = {}
        index: dict[int, int] = dict.fromkeys(due, 0)
        for key, raw in list(self.table.items()):
            if key in fresh:
                continue
            state = RouteState.from_bytes(raw)
            if state.partition not in due:
                continue  # another partition's (or a standby copy): not ours to touch
            p = state.partition
            offset, at = due[p]
            now = wall if at is None else at
            if state.is_expired(
                now, dedup_horizon_us=self._dedup_us, retention_us=self._retention_us
            ):
                emitted = state.close_observations()
                expired.append(key)
            else:
                emitted = state.tick(now)
                if emitted:
                    changed[key] = state
            for obs in emitted:
                stamped = obs.with_id(obs_id(p, offset, index[p]))
                index[p] += 1
                out[dims_key(obs.dims)].append(stamped)
        await _delivered(
            [await self._send_observations(k, encode_batch(v, [])) for k, v in sorted(out.items())]
        )
        for key, state in changed.items():
            self.table[key] = state.to_bytes()
            self.metrics.table_writes.labels("tickets").inc()
        for key in expired:
            del self.table[key]
            self.metrics.table_writes.labels("tickets").inc()


def load_schedules_setting(settings: Settings) -> SchedulesConfig | None:
    """The schedules file of ``--schedules`` (None: no business time, no SLAs)."""
    if settings.schedules is None:
        return None
    try:
        return load_schedules(str(settings.schedules))
    except SchedulesError as exc:
        raise SettingsError(f"--schedules / CX_SCHEDULES: {exc}") from None


def tick_value(now_us: int) -> bytes:
    """A timer tick's value: the time it was sent at."""
    return str(now_us).encode()


def _tick_time(value: bytes | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


async def _delivered(results: list[Any]) -> None:
    """Wait until every send is acknowledged by the broker (Faust returns
    awaitable delivery futures; plain test doubles return None)."""
    for result in results:
        if inspect.isawaitable(result):
            await result
