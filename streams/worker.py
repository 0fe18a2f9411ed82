"""Starting one worker: topics, rules, the pipeline, the Faust worker loop."""

from __future__ import annotations

import asyncio
import logging

from streams.domain.clock import SystemClock
from streams.errors import BrokerError
from streams.exposition.runtime import AlertmanagerCollector, worker_registry
from streams.settings import Settings

log = logging.getLogger(__name__)


def use_event_loop(name: str) -> None:
    """Every event loop made from here on is ``name``'s (before Faust makes
    its own). uvloop runs the worker's callbacks and sockets in compiled
    code: about a quarter more events/s than the standard loop here."""
    if name != "uvloop":
        return
    try:
        import uvloop
    except ImportError:
        log.warning("--event-loop uvloop: uvloop is not installed; using asyncio's loop")
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_worker(settings: Settings) -> int:
    import faust
    from kafka.errors import KafkaError

    from streams.kafka_security import probe
    from streams.kafka_tools import ensure_topics, partition_counts
    from streams.pipeline.alerts import build_alerter
    from streams.pipeline.app import Pipeline
    from streams.pipeline.tickets_stage import load_schedules_setting

    use_event_loop(settings.event_loop)
    # Rules and schedules errors stop us here, before Kafka; the schedules
    # file is loaded once for the ticket stage and the alerter.
    schedules = load_schedules_setting(settings)
    alerter, forwarder = build_alerter(settings, schedules)
    log.info(
        "connecting to Kafka at %s (%s)", settings.bootstrap, settings.kafka_security.describe()
    )
    # Fails fast, naming the cause: Faust's clients would retry an untrusted
    # certificate or a wrong password as if the broker were only down.
    probe(settings.bootstrap, settings.kafka_security)
    try:
        created = ensure_topics(settings)
        inputs = partition_counts(settings, [settings.tickets_topic, settings.surveys_topic])
    except KafkaError as exc:
        raise BrokerError(
            f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot reach Kafka at {settings.bootstrap}: {exc}"
        ) from None
    if created:
        log.info("created topics %s", ", ".join(created))
    in_place = frozenset(t for t, n in inputs.items() if n == settings.partitions)
    for topic, n in sorted(inputs.items()):
        if n != settings.partitions:
            log.warning(
                "%s has %d partitions, cxstream %d (--partitions): every record of it "
                "is re-keyed through the route topic (slower); give it %d partitions",
                topic,
                n,
                settings.partitions,
                settings.partitions,
            )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = worker_registry()
    if forwarder is not None:
        registry.register(AlertmanagerCollector(forwarder))
    pipeline = Pipeline(
        settings,
        SystemClock(),
        registry,
        alerter,
        on_alert=forwarder.submit_bytes if forwarder is not None else None,
        in_place_topics=in_place,
        schedules=schedules,
    )
    if forwarder is not None:
        # Started and stopped with the app (app.service() needs autodiscovery).
        pipeline.app.add_dependency(forwarder.as_service())
    pipeline.preload_tables()
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
    return 0
