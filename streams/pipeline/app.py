"""The one place the Faust App is built from Settings.

Agents are thin: turn Faust messages into ``Record``s, hand them to a
stage, and let the stage call the domain. With ``--delivery batch`` (the
default) the same handlers get each fetch's records at once instead of
through the agents' streams (see delivery.py). All topics and tables use
raw bytes, so Faust itself never decodes (and never silently skips) a
record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import faust
from faust.types import TP
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from streams.domain.clock import Clock
from streams.domain.confidence import WindowBounds
from streams.domain.schedules import SchedulesConfig
from streams.exposition.collectors import CxCollector, KeyView
from streams.exposition.pipeline_metrics import PipelineMetrics
from streams.exposition.text import generate
from streams.kafka_security import faust_credentials, kafka_python_kwargs, ssl_context
from streams.kafka_tools import partition_counts
from streams.pipeline import heap
from streams.pipeline.aggregate_stage import AggregateStage, Alerter
from streams.pipeline.delivery import install_batch_delivery, shorten_fetch_wait
from streams.pipeline.envelope import (
    TICK_KEY,
    Provenance,
    deadletter_headers,
    dims_from_key,
    headers_dict,
)
from streams.pipeline.ingest import Ingest
from streams.pipeline.liveness import Liveness, interval_s
from streams.pipeline.offsets import guard_fetch_partitions, guard_stream_positions
from streams.pipeline.preload import PreloadStore, preload
from streams.pipeline.records import Record
from streams.pipeline.tables import (
    ChangelogTable,
    RouteKeyTable,
    RowTable,
    key_partitioned_table,
    route_partition,
)
from streams.pipeline.tickets_stage import TicketStage, tick_value
from streams.pipeline.writes import WriteBarrier
from streams.settings import Settings

log = logging.getLogger(__name__)

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}
BATCH_MAX = 2000
BATCH_WITHIN_S = 0.1
#: How often freed heap memory is handed back to the OS.
HEAP_RELEASE_S = 30.0


def _record(msg: Any) -> Record:
    """A Faust message of an internal topic as a stage's record."""
    return Record(
        key=msg.key,
        value=msg.value,
        headers=headers_dict(msg.headers),
        partition=msg.partition,
        offset=msg.offset,
    )


class Pipeline:
    """Owns the App, its topics, tables, stages and the metrics registry."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        registry: CollectorRegistry,
        alerter: Alerter,
        on_alert: Any = None,
        in_place_topics: frozenset[str] = frozenset(),
        schedules: SchedulesConfig | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.registry = registry
        self.metrics = PipelineMetrics(registry)
        s = settings
        security = s.kafka_security
        self.app = faust.App(
            s.app_id,
            broker=[f"kafka://{h}" for h in s.bootstrap.split(",")],
            broker_credentials=faust_credentials(security, ssl_context(security)),
            store="memory://",
            datadir=str(s.data_dir),
            autodiscover=False,
            web_enabled=True,
            web_port=s.web_port,
            web_bind=s.web_host,
            web_host=s.web_host,
            topic_partitions=s.partitions,
            topic_replication_factor=s.replication_factor,
            table_standby_replicas=s.standby_replicas,
            # Never Faust's exactly_once (known to duplicate): at-least-once
            # delivery plus idempotent state gives exact numbers.
            processing_guarantee="at_least_once",
            consumer_auto_offset_reset="earliest",
            key_serializer="raw",
            value_serializer="raw",
            producer_acks=-1,
            # Batch sends for a few milliseconds: one produce request per
            # partition per batch instead of one per record.
            producer_linger=0.005,
            # The client sends one batch per partition per request: at
            # Faust's 16 KiB, a fetch's changelog and route records took
            # several round trips per partition before its flush returned.
            # Far below the broker's 1 MiB limit per batch.
            producer_max_batch_size=256 * 1024,
            broker_commit_interval=1.0,
            # A fetch holds at most this many records: its handling takes a
            # fraction of a second, so the stages downstream, a rebalance or
            # a stop never wait long for it.
            broker_max_poll_records=BATCH_MAX,
            # A crashed worker's partitions move once the group coordinator
            # gives up on it: 10 s instead of Faust's 60 s, so numbers are
            # exact again sooner after a kill (heartbeats every 3 s).
            broker_session_timeout=10.0,
            broker_heartbeat_interval=3.0,
        )
        app = self.app
        guard_stream_positions(app)
        guard_fetch_partitions(app)
        shorten_fetch_wait(app)
        # Faust's buffer of table writes stalls a stream's conductor at 100
        # pending writes; a batch writes hundreds.
        app.producer.buffer.max_messages = BATCH_MAX * 4
        self._writes = WriteBarrier(app.producer.buffer, self._client_flush, self._send_records)
        self.tickets_topic = app.topic(s.tickets_topic, **RAW)
        self.surveys_topic = app.topic(s.surveys_topic, **RAW)
        self.route_topic = app.topic(
            f"{s.app_id}-route", partitions=s.partitions, internal=True, **RAW
        )
        self.obs_topic = app.topic(
            f"{s.app_id}-observations", partitions=s.partitions, internal=True, **RAW
        )
        self.deadletter_topic = app.topic(s.deadletter_topic, **RAW)
        self.alerts_topic = app.topic(s.alerts_topic, **RAW)
        # Coalesced writes happen after a batch, so the changelog partition
        # comes from the key itself (see tables.py). Tables take the app's
        # raw serializers.
        self.tickets_table = key_partitioned_table(app, "tickets", s.partitions, RouteKeyTable)
        self.windows_table = key_partitioned_table(app, "windows", s.partitions, RowTable)
        # The stages write them through ChangelogTable: changelog records go
        # out with each batch's flush (writes.py).
        tickets_rows = ChangelogTable(self.tickets_table, self._writes)
        windows_rows = ChangelogTable(self.windows_table, self._writes)
        self.ingest = Ingest(
            s, self.metrics, self._send_route, self._send_deadletter, in_place_topics
        )
        self.tickets = TicketStage(
            s,
            self.metrics,
            tickets_rows,
            self._send_observation,
            self._send_deadletter,
            clock.now_us,
            schedules,
        )
        self.aggregate = AggregateStage(
            s,
            self.metrics,
            windows_rows,
            alerter,
            self._send_alert,
            clock.now_us,
            self._send_internal_deadletter,
            recovered=self._recovered,
        )
        self._on_alert = on_alert
        self.alerter = alerter
        if hasattr(alerter, "metrics"):
            alerter.metrics = self.metrics  # cx_alerts_total on this worker's registry
        self.liveness = Liveness(
            app,
            self.metrics,
            [
                s.tickets_topic,
                s.surveys_topic,
                self.route_topic.get_topic_name(),
                self.obs_topic.get_topic_name(),
            ],
            s.bootstrap,
            s.stall_timeout_s,
        )
        schedules = self.tickets.schedules
        self.collector = CxCollector(
            s.dimensions,
            self._key_views,
            WindowBounds(s.confidence),
            business=schedules is not None,
            sla=schedules is not None and schedules.sla is not None,
        )
        registry.register(self.collector)
        self._register_agents()

    def preload_tables(self) -> None:
        """Read the tables' changelogs in bulk before the app starts (a new
        process has nothing in memory; see preload.py)."""
        if self.settings.preload_max_records == 0:
            return
        security = self.settings.kafka_security
        stores: dict[str, PreloadStore] = {}
        for table in (self.tickets_table, self.windows_table):
            store = table.data
            assert isinstance(store, PreloadStore)  # KeyPartitionedTable's
            stores[table.changelog_topic.get_topic_name()] = store
        try:
            partitions = partition_counts(self.settings, list(stores))
        except KafkaError as exc:  # e.g. a first start: no changelog yet
            log.info("no changelogs to read in bulk (%s)", exc)
            return
        done = preload(
            self.settings.bootstrap,
            kafka_python_kwargs(security, ssl_context(security)),
            stores,
            partitions,
            self.settings.preload_max_records,
        )
        if done is not None:
            log.info(
                "read %d changelog records of %d partitions in %.1f s",
                done.records,
                done.partitions,
                done.seconds,
            )

    # -- sends -------------------------------------------------------------

    async def _send_route(self, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        await self.route_topic.send(
            key=key,
            value=value,
            headers=headers,
            partition=route_partition(key, self.settings.partitions),
        )

    async def _send_observation(self, key: bytes, value: bytes) -> Any:
        # Returns the delivery future: the ticket stage awaits it before
        # writing the state that produced these observations.
        return await self.obs_topic.send(key=key, value=value)

    async def _send_alert(self, key: bytes, value: bytes) -> None:
        await self.alerts_topic.send(key=key, value=value)
        if self._on_alert is not None:
            await self._on_alert(value)

    async def _send_deadletter(
        self, prov: Provenance, value: bytes | None, reason: str, detail: str
    ) -> None:
        try:
            await self.deadletter_topic.send(
                key=prov.key, value=value, headers=deadletter_headers(prov, reason, detail)
            )
        except Exception:
            self.metrics.deadletter_failures.inc()
            raise  # better to stop than to lose a record silently

    async def _send_internal_deadletter(self, rec: Record, reason: str, detail: str) -> None:
        prov = Provenance(
            source="observations",
            topic=self.obs_topic.get_topic_name(),
            partition=rec.partition,
            offset=rec.offset,
            key=rec.key,
            received_us=0,
        )
        await self._send_deadletter(prov, rec.value, reason, detail)

    # -- agents ------------------------------------------------------------

    def _recovered(self) -> bool:
        recovery: Any = getattr(self.app.tables, "recovery")  # noqa: B009 - untyped in Faust
        return not self.app.rebalancing and bool(recovery.completed.is_set())

    def _register_agents(self) -> None:
        app = self.app

        # The aggregate stage keeps its partitions' states in memory: it
        # rebuilds them from the table after every change of assignment.
        @app.on_partitions_revoked.connect  # type: ignore[arg-type]
        async def on_revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
            self.aggregate.assign()

        @app.on_partitions_assigned.connect  # type: ignore[arg-type]
        async def on_assigned(sender: Any, *args: Any, **kwargs: Any) -> None:
            self.aggregate.assign()

        async def each_batch(stream: Any, handle: Any) -> AsyncIterator[None]:
            async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
                await handle([e.message for e in events])
                await self._flushed()
                yield None

        @app.agent(self.tickets_topic, name="cx-ingest-tickets")
        async def ingest_tickets(stream: Any) -> AsyncIterator[None]:
            async for _ in each_batch(stream, partial(self._ingest_batch, "tickets")):
                yield None

        @app.agent(self.surveys_topic, name="cx-ingest-surveys")
        async def ingest_surveys(stream: Any) -> AsyncIterator[None]:
            async for _ in each_batch(stream, partial(self._ingest_batch, "surveys")):
                yield None

        @app.agent(self.route_topic, name="cx-tickets")
        async def tickets_stage(stream: Any) -> AsyncIterator[None]:
            async for _ in each_batch(stream, self._tickets_batch):
                yield None

        @app.agent(self.obs_topic, name="cx-aggregate")
        async def aggregate_stage(stream: Any) -> AsyncIterator[None]:
            async for _ in each_batch(stream, self._aggregate_batch):
                yield None

        if self.settings.delivery == "batch":
            # The agents above stay subscribed (assignment, commits); their
            # records reach the stages a fetch at a time instead.
            install_batch_delivery(
                app,
                [
                    self.obs_topic.get_topic_name(),
                    self.route_topic.get_topic_name(),
                    self.tickets_topic.get_topic_name(),
                    self.surveys_topic.get_topic_name(),
                ],
                self._fetch_batch,
                self._writes.take,
            )

        @app.timer(self.settings.tick_interval_s)  # type: ignore[untyped-decorator]
        async def tick_aggregate() -> None:
            await self._tick(self.obs_topic)

        @app.timer(self.settings.sweep_interval_s)  # type: ignore[untyped-decorator]
        async def tick_tickets() -> None:
            await self._tick(self.route_topic)

        @app.timer(interval_s(self.settings.stall_timeout_s))  # type: ignore[untyped-decorator]
        async def watchdog() -> None:
            await self.liveness.check()

        @app.timer(HEAP_RELEASE_S)  # type: ignore[untyped-decorator]
        async def release_heap() -> None:
            # Processing frees far more than the state keeps; glibc holds it
            # in the process until asked (see heap.py): 1,000 keys 543 MB ->
            # 440 MB after a minute.
            heap.release()

        @app.page("/metrics")
        async def metrics_view(web: Any, request: Any) -> Any:
            from prometheus_client import CONTENT_TYPE_LATEST

            # ?name[]=cx_events_total&name[]=... selects samples by name, as
            # prometheus_client's own handler does: a cheap probe for tools
            # that poll one number often.
            got = request.query.getall("name[]", None)
            names = frozenset(got) if got else None
            with self.collector.selecting(names):
                body = generate(self.registry, names)
            return web.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

        @app.page("/healthz")
        async def healthz_view(web: Any, request: Any) -> Any:
            actives = self._active_partitions(self.obs_topic.get_topic_name())
            return web.json(
                {
                    "status": "ok",
                    "app_id": self.settings.app_id,
                    "active_partitions": sorted(actives),
                    # Settled: not rebalancing and tables recovered. Before
                    # that, numbers on /metrics may still be catching up.
                    "rebalancing": bool(self.app.rebalancing),
                    "recovered": self._recovered(),
                    # Seconds without progress while lagging or recovering,
                    # or cut off from the broker; at --stall-timeout the
                    # worker exits.
                    "stalled_s": round(self.liveness.stuck_s, 1),
                }
            )

        @app.page("/readyz")
        async def readyz_view(web: Any, request: Any) -> Any:
            # For load balancers and rollouts: 503 until this worker has its
            # assignment and its tables are recovered (numbers are current).
            ready = self.liveness.ready()
            return web.json(
                {"ready": ready, "recovering": self.liveness.recovering()},
                status=200 if ready else 503,
            )

    # -- the stages' batches (from the agents or a fetch at a time); the
    # caller flushes before the records may be acknowledged -----------------

    async def _fetch_batch(self, batches: Mapping[str, Sequence[Any]]) -> None:
        """One fetch's records of all four topics. The aggregate stage first:
        what the ticket stage sent it in the fetch before becomes visible a
        batch sooner. Then one ticket-stage batch for the route records and
        the input records already in their ticket's partition, so it waits
        for its observations' delivery once per fetch."""
        obs = batches.get(self.obs_topic.get_topic_name())
        if obs:
            await self._aggregate_batch(obs)
        records = [_record(m) for m in batches.get(self.route_topic.get_topic_name(), ())]
        for source, topic in (("tickets", self.tickets_topic), ("surveys", self.surveys_topic)):
            messages = batches.get(topic.get_topic_name())
            if messages:
                records += await self._validate(source, messages)
        if records:
            await self.tickets.handle_batch(records)

    async def _ingest_batch(self, source: str, messages: Sequence[Any]) -> None:
        in_place = await self._validate(source, messages)
        if in_place:
            await self.tickets.handle_batch(in_place)

    async def _validate(self, source: str, messages: Sequence[Any]) -> list[Record]:
        """Ingest: every input record is forwarded, dead-lettered or returned
        (already in its ticket's partition) for the ticket stage."""
        in_place: list[Record] = []
        for msg in messages:
            prov = Provenance(
                source=source,
                topic=msg.topic,
                partition=msg.partition,
                offset=msg.offset,
                key=msg.key,
                received_us=self.clock.now_us(),
            )
            try:
                rec = await self.ingest.handle(prov, msg.value)
            except Exception as exc:
                log.exception(
                    "processing_error at ingest %s/%d@%d", msg.topic, msg.partition, msg.offset
                )
                self.metrics.rejected(source, "processing_error")
                await self._send_deadletter(prov, msg.value, "processing_error", repr(exc)[:300])
                continue
            if rec is not None:
                in_place.append(rec)
        return in_place

    async def _tickets_batch(self, messages: Sequence[Any]) -> None:
        await self.tickets.handle_batch([_record(m) for m in messages])

    async def _aggregate_batch(self, messages: Sequence[Any]) -> None:
        await self.aggregate.handle_batch([_record(m) for m in messages])

    async def _flushed(self) -> None:
        """Wait until everything a batch sent and wrote is acknowledged (see
        writes.py), before its input offsets may be committed."""
        await self._writes.take()

    async def _send_records(
        self, topic: str, partition: int, records: list[tuple[bytes, bytes | None]]
    ) -> list[asyncio.Future[Any]]:
        """One partition's changelog records as produce batches (the client
        takes the first record of a batch whatever its size)."""
        client = self.app.producer._producer  # type: ignore[attr-defined]  # Faust's aiokafka producer
        if client is None:
            raise RuntimeError("the producer is not started")
        sent: list[asyncio.Future[Any]] = []
        batch = client.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is None:
                sent.append(await client.send_batch(batch, topic, partition=partition))
                batch = client.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        sent.append(await client.send_batch(batch, topic, partition=partition))
        return sent

    async def _client_flush(self) -> None:
        client = getattr(self.app.producer, "_producer", None)  # Faust's aiokafka producer
        if client is not None:
            await client.flush()

    async def _tick(self, topic: Any) -> None:
        for partition in sorted(self._active_partitions(topic.get_topic_name())):
            # The time rides in the tick: a replayed tick judges SLAs the same.
            await topic.send(
                key=TICK_KEY, value=tick_value(self.clock.now_us()), partition=partition
            )

    def _active_partitions(self, topic_name: str) -> set[int]:
        try:
            actives: Iterable[TP] = self.app.assignor.assigned_actives()
        except Exception:  # before the first assignment
            return set()
        return {tp.partition for tp in actives if tp.topic == topic_name}

    def _key_views(self) -> Iterable[KeyView]:
        now = self.clock.now_us()
        actives = self._active_partitions(self.obs_topic.get_topic_name())
        self.metrics.assigned.set(len(actives))
        for key, state in self.aggregate.snapshot_states(actives):
            yield KeyView(
                labels=dims_from_key(key),
                windows=state.windows(now),
                counters=state.counters(now),
                firing=self.alerter.firing(state),
                now_us=now,
                version=state.version,
            )
