"""Starting one worker: topics, rules, the pipeline, the Faust worker loop."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from streams.domain.clock import SystemClock
from streams.errors import BrokerError
from streams.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> int:
    import faust
    from kafka.errors import KafkaError

    from streams.kafka_security import probe
    from streams.kafka_tools import ensure_topics
    from streams.pipeline.alerts import build_alerter
    from streams.pipeline.app import Pipeline

    alerter, forwarder = build_alerter(settings)  # rules errors stop us here, before Kafka
    log.info(
        "connecting to Kafka at %s (%s)", settings.bootstrap, settings.kafka_security.describe()
    )
    # Fails fast, naming the cause: Faust's clients would retry an untrusted
    # certificate or a wrong password as if the broker were only down.
    probe(settings.bootstrap, settings.kafka_security)
    try:
        created = ensure_topics(settings)
    except KafkaError as exc:
        raise BrokerError(
            f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot reach Kafka at {settings.bootstrap}: {exc}"
        ) from None
    if created:
        log.info("created topics %s", ", ".join(created))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(
        settings,
        SystemClock(),
        CollectorRegistry(),
        alerter,
        on_alert=forwarder.submit_bytes if forwarder is not None else None,
    )
    if forwarder is not None:
        # Started and stopped with the app (app.service() needs autodiscovery).
        pipeline.app.add_dependency(forwarder.as_service())
    worker = faust.Worker(
        pipeline.app,
        loglevel=settings.log_level.upper(),
        redirect_stdouts=False,
        override_logging=False,
    )
    worker.execute_from_commandline()
    return 0
