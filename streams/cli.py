"""The ``cxstream`` command line: worker, produce, validate, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from streams import __version__
from streams.errors import CxError
from streams.settings import SETTINGS, Settings, format_duration, load_settings

log = logging.getLogger("cxstream")

WORKER_HELP = {
    "bootstrap": "Kafka bootstrap servers HOST:PORT[,HOST:PORT]",
    "web_port": "port serving /metrics and /healthz",
    "data_dir": "directory for local worker state",
    "rules": "alert rules YAML file",
    "schedules": "business hours and SLA policies YAML file",
    "sla_warning": "SLA at_risk horizon, a share of the target (25%% or 0.25)",
    "web_host": "address the web server binds",
    "app_id": "consumer group and internal topic prefix",
    "partitions": "partitions of the topics cxstream creates",
    "standby_replicas": "warm table copies per partition",
    "windows": "rolling windows, comma-separated durations",
    "dimensions": "label dimensions read from events",
    "max_label_values": "distinct values per label before 'other'",
    "dedup_horizon_s": "how long event_ids are remembered (at least 1h)",
    "ticket_retention_s": "how long a resolved ticket's state is kept",
    "tick_interval_s": "alert evaluation interval without events",
    "sweep_interval_s": "interval of the expiry sweep of finished tickets",
    "alertmanager_url": "Alertmanager base URL to forward alerts to",
}
DURATION_HINT = "; a duration: 30s, 15m, 24h, 7d, or bare seconds"
#: how an unset optional setting behaves, for the help text
UNSET_HELP = {
    "rules": "the built-in rules",
    "schedules": "none: no business-time or SLA metrics",
    "alertmanager_url": "off",
}


def default_text(name: str) -> str:
    """A setting's default as a user would type it (durations as 24h, lists comma-joined)."""
    value = getattr(Settings(), name)
    if value is None:
        return UNSET_HELP.get(name, "unset")
    if name.endswith("_s"):
        return format_duration(value)
    if isinstance(value, tuple):
        return ",".join(str(getattr(v, "name", v)) for v in value)
    return str(value)


def _add_settings(parser: argparse.ArgumentParser, only: Sequence[str] | None = None) -> None:
    for name, (flag, env, _) in SETTINGS.items():
        if only is not None and name not in only:
            continue
        parser.add_argument(
            flag,
            dest=name,
            default=None,
            metavar="VALUE",
            help=(
                f"{WORKER_HELP.get(name, name.replace('_', ' '))} "
                f"(default {default_text(name)}{DURATION_HINT if name.endswith('_s') else ''})"
                f" [env {env}]"
            ),
        )


def _settings(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in SETTINGS}
    return load_settings(flags, os.environ)


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _configure_logging(settings.log_level)
    from streams.worker import run_worker

    return run_worker(settings)


def cmd_produce(args: argparse.Namespace) -> int:
    from streams.kafka_tools import iter_lines, produce

    settings = _settings(args)
    _configure_logging(settings.log_level)
    if args.file == "-":
        sent, skipped = produce(settings, iter_lines(sys.stdin.buffer))
    else:
        try:
            handle = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise CxError(f"FILE: cannot read {args.file!r}: {exc.strerror}") from None
        with handle:
            sent, skipped = produce(settings, iter_lines(handle))
    print(f"sent {sent} events to {settings.bootstrap}; skipped {skipped} lines", file=sys.stderr)
    return 0 if skipped == 0 else 1


def cmd_validate(args: argparse.Namespace) -> int:
    from streams.domain.clock import SystemClock
    from streams.validate_file import run

    settings = _settings(args)
    try:
        return run(args.file, sys.stdout, SystemClock().now_us(), settings.dimensions)
    except OSError as exc:
        raise CxError(f"FILE: cannot read {args.file!r}: {exc.strerror}") from None


def cmd_validate_config(args: argparse.Namespace) -> int:
    from streams.validate_config import run

    settings = _settings(args)
    return run(args.file, args.kind, [w.name for w in settings.windows], sys.stdout)


TOPIC_SETTINGS = [
    "bootstrap",
    "app_id",
    "tickets_topic",
    "surveys_topic",
    "alerts_topic",
    "deadletter_topic",
    "partitions",
    "replication_factor",
    "log_level",
]


def _quiet_kafka(level: str) -> None:
    # kafka-python logs every connection at INFO: noise for a one-shot command.
    if level != "debug":
        logging.getLogger("kafka").setLevel(logging.WARNING)


def cmd_topics_create(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from streams.kafka_tools import all_topics, ensure_topics
    from streams.settings import parse_duration_s

    settings = _settings(args)
    _configure_logging(settings.log_level)
    _quiet_kafka(settings.log_level)
    retention_ms = None
    if args.retention is not None:
        retention_ms = round(parse_duration_s(args.retention, "--retention") * 1000)
    try:
        created = ensure_topics(settings, retention_ms=retention_ms)
    except KafkaError as exc:
        raise CxError(f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot create topics: {exc}") from None
    for name in all_topics(settings):
        print(f"{'created' if name in created else 'exists '} {name}")
    return 0


def cmd_topics_describe(args: argparse.Namespace) -> int:
    import json

    from kafka.errors import KafkaError

    from streams.kafka_tools import describe_topics, format_description

    settings = _settings(args)
    _configure_logging(settings.log_level)
    _quiet_kafka(settings.log_level)
    try:
        topics = describe_topics(settings)
    except KafkaError as exc:
        raise CxError(f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot describe topics: {exc}") from None
    if args.json:
        doc = {
            "group": settings.app_id,
            "topics": {
                name: [
                    {
                        "partition": p.partition,
                        "end_offset": p.end_offset,
                        "committed": p.committed,
                        "lag": p.lag,
                    }
                    for p in parts
                ]
                for name, parts in topics.items()
            },
        }
        print(json.dumps(doc, indent=2))
    else:
        print(format_description(topics, settings.app_id))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxstream",
        description="Real-time customer-experience metrics from Kafka to Prometheus.",
    )
    parser.add_argument("--version", action="version", version=f"cxstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    worker = sub.add_parser("worker", help="run one processing worker")
    _add_settings(worker)
    worker.set_defaults(func=cmd_worker)

    produce = sub.add_parser("produce", help="send JSON Lines to the input topics by type")
    produce.add_argument("file", help="JSON Lines file, or - for standard input")
    _add_settings(produce, ["bootstrap", "tickets_topic", "surveys_topic", "log_level"])
    produce.set_defaults(func=cmd_produce)

    validate = sub.add_parser(
        "validate", help="check a JSON Lines file against the contract offline"
    )
    validate.add_argument("file", help="JSON Lines file, or - for standard input")
    _add_settings(validate, ["dimensions"])
    validate.set_defaults(func=cmd_validate)

    validate_config = sub.add_parser(
        "validate-config", help="check an alert rules or schedules/SLA file (errors at FILE:LINE)"
    )
    validate_config.add_argument("file", help="YAML rules or schedules file")
    validate_config.add_argument(
        "--kind", choices=("rules", "schedules"), help="default: from the top-level keys"
    )
    _add_settings(validate_config, ["windows"])
    validate_config.set_defaults(func=cmd_validate_config)

    topics = sub.add_parser("topics", help="create or describe the worker's Kafka topics")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True)
    create = topics_sub.add_parser(
        "create", help="create missing topics (public, internal, changelogs); idempotent"
    )
    create.add_argument(
        "--retention",
        default=None,
        metavar="DURATION",
        help="retention.ms of the non-compacted topics, e.g. 7d (default: the broker's)",
    )
    _add_settings(create, TOPIC_SETTINGS)
    create.set_defaults(func=cmd_topics_create)
    describe = topics_sub.add_parser(
        "describe", help="partitions and per-partition lag of the worker's consumer group"
    )
    describe.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_settings(describe, TOPIC_SETTINGS)
    describe.set_defaults(func=cmd_topics_describe)

    demo = sub.add_parser(
        "demo", help="start a local broker, a worker and realistic traffic on this machine"
    )
    demo.add_argument("--web-port", type=int, default=6066, help="worker /metrics port")
    demo.add_argument("--kafka-port", type=int, default=9092, help="local broker port")
    demo.add_argument("--rate", type=float, default=20.0, help="events per second")
    demo.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (0 = until Ctrl-C)"
    )
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CxError as exc:
        print(f"cxstream: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
