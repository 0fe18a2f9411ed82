"""Worker settings: one frozen ``Settings`` built from flags and ``CX_*`` variables.

Every setting has a command-line flag and an environment variable; the flag
wins. (One exception: the SASL password has no flag, which would show it in
the process list; it comes from ``CX_KAFKA_SASL_PASSWORD`` or a file.) Errors stop start-up with a ``SettingsError`` that names the setting.
An unknown ``CX_*`` variable is an error too: a typo must not silently fall
back to a default in production. The one exception is what Kubernetes injects
for a Service named ``cx`` or ``cx-*`` (service links, see
``is_service_link``): those are not settings, and a pod must still start.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.domain.model import DEFAULT_DIMENSIONS, WindowSpec
from streams.errors import SettingsError
from streams.kafka_security import (
    CAFILE_SETTING,
    MECHANISM_SETTING,
    MECHANISMS,
    PASSWORD_SETTING,
    PROTOCOL_SETTING,
    PROTOCOLS,
    USERNAME_SETTING,
    KafkaSecurity,
    Secret,
)

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_HOSTPORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,30}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


def parse_duration_s(text: str, setting: str) -> float:
    """'90s', '15m', '24h', '7d', '250ms', or bare seconds ('86400') -> seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise SettingsError(
            f"{setting}: {text!r} is not a duration like 30s, 15m, 24h, 7d or 86400 (seconds)"
        )
    return int(match.group(1)) * _UNITS_MS[match.group(2) or "s"] / 1000.0


def format_duration(seconds: float) -> str:
    """A short exact text for a duration: 604800 -> '7d', 86400 -> '24h', 0.25 -> '250ms'."""
    ms = round(seconds * 1000)
    for unit in ("d", "h", "m", "s"):
        # Days only from two on: "24h" reads better than "1d".
        if ms and ms % _UNITS_MS[unit] == 0 and (unit != "d" or ms >= 2 * _UNITS_MS["d"]):
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def parse_windows(text: str, setting: str = "--windows / CX_WINDOWS") -> tuple[WindowSpec, ...]:
    specs: list[WindowSpec] = []
    for part in (p.strip() for p in text.split(",")):
        seconds = parse_duration_s(part, setting)
        if seconds < 60 or seconds != int(seconds):
            raise SettingsError(f"{setting}: window {part!r} must be whole seconds, at least 1m")
        if any(s.name == part for s in specs):
            raise SettingsError(f"{setting}: window {part!r} is listed twice")
        specs.append(WindowSpec(part, int(seconds)))
    if not specs:
        raise SettingsError(f"{setting}: at least one window is required")
    return tuple(specs)


def parse_bootstrap(text: str, setting: str = "--bootstrap / CX_KAFKA_BOOTSTRAP") -> str:
    servers = [s.strip() for s in text.split(",") if s.strip()]
    if not servers:
        raise SettingsError(f"{setting}: empty; expected HOST:PORT[,HOST:PORT...]")
    for server in servers:
        match = _HOSTPORT.match(server)
        if match is None or not 0 < int(match.group(2)) < 65536:
            raise SettingsError(f"{setting}: {server!r} is not HOST:PORT (e.g. localhost:9092)")
    return ",".join(servers)


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs; see ``SETTINGS`` for flags and variables."""

    bootstrap: str = "localhost:9092"
    web_port: int = 6066
    # Loopback unless told otherwise: /metrics and /healthz are unauthenticated.
    # The container image sets CX_WEB_HOST=0.0.0.0 (its network is its own).
    web_host: str = "127.0.0.1"
    data_dir: Path = Path("cxstream-data")
    rules: Path | None = None
    schedules: Path | None = None  # business hours and SLA policies (contract 8.2, 8.3)
    sla_warning: float = 0.25  # at_risk when less than this share of a target remains
    app_id: str = "cxstream"
    tickets_topic: str = "cx.tickets"
    surveys_topic: str = "cx.surveys"
    alerts_topic: str = "cx.alerts"
    deadletter_topic: str = "cx.deadletter"
    partitions: int = 8
    replication_factor: int = 1
    standby_replicas: int = 1
    windows: tuple[WindowSpec, ...] = field(default_factory=lambda: parse_windows("1h,24h,7d,30d"))
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    max_label_values: int = 100
    dedup_horizon_s: float = 86_400.0
    ticket_retention_s: float = 7 * 86_400.0
    tick_interval_s: float = 5.0
    sweep_interval_s: float = 300.0
    alertmanager_url: str | None = None
    log_level: str = "info"
    confidence: float = 0.95
    stall_timeout_s: float = 300.0
    #: a new worker reads its changelogs in bulk up to this many records
    preload_max_records: int = 5_000_000
    #: how records reach the stages: a fetch at a time, or Faust's streams
    delivery: str = "batch"
    #: the asyncio event loop: uvloop's (where installed) or the standard one
    event_loop: str = "uvloop"
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = field(default=None, repr=False)
    kafka_sasl_password_file: Path | None = None
    kafka_ssl_cafile: Path | None = None

    @property
    def longest_window_us(self) -> int:
        return max(w.us for w in self.windows)

    @property
    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username,
            password=self.kafka_sasl_password,
            cafile=self.kafka_ssl_cafile,
        )


def _int_in(lo: int, hi: int) -> Callable[[str, str], int]:
    def parse(text: str, setting: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise SettingsError(f"{setting}: {text!r} is not an integer") from None
        if not lo <= value <= hi:
            raise SettingsError(f"{setting}: {value} is outside {lo}..{hi}")
        return value

    return parse


def _seconds_at_least(minimum_s: float) -> Callable[[str, str], float]:
    def parse(text: str, setting: str) -> float:
        seconds = parse_duration_s(text, setting)
        if seconds < minimum_s:
            raise SettingsError(f"{setting}: {text!r} is below the minimum of {minimum_s:g}s")
        return seconds

    return parse


def _topic(text: str, setting: str) -> str:
    if not _TOPIC.match(text):
        raise SettingsError(f"{setting}: {text!r} is not a valid Kafka topic name")
    return text


def _dimensions(text: str, setting: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    if not names or any(not _NAME.match(n) for n in names) or len(set(names)) != len(names):
        raise SettingsError(
            f"{setting}: {text!r} must be distinct lower-case names, e.g. channel,team"
        )
    return names


def _path(text: str, setting: str) -> Path:
    return Path(text)


def _rules(text: str, setting: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise SettingsError(f"{setting}: rules file {text!r} does not exist or is not a file")
    try:
        path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{setting}: rules file {text!r} is unreadable: {exc}") from None
    return path


def _schedules(text: str, setting: str) -> Path:
    """The file must parse: its errors name FILE:LINE at start-up, like --rules."""
    from streams.domain.schedules_file import load_schedules
    from streams.errors import SchedulesError

    try:
        load_schedules(text)
    except SchedulesError as exc:
        raise SettingsError(f"{setting}: {exc}") from None
    return Path(text)


def _share(text: str, setting: str) -> float:
    """'25%' or '0.25': a share of a target, in [0, 1)."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SettingsError(f"{setting}: {text!r} is not a share like 25% or 0.25") from None
    if not 0.0 <= value < 1.0:
        raise SettingsError(f"{setting}: {text!r} must be at least 0 and below 100%")
    return value


def _url(text: str, setting: str) -> str:
    if not re.match(r"^https?://[^\s/]+", text):
        raise SettingsError(f"{setting}: {text!r} is not an http(s) URL")
    return text.rstrip("/")


def _log_level(text: str, setting: str) -> str:
    if text.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"{setting}: {text!r} is not one of debug, info, warning, error")
    return text.lower()


def _str(text: str, setting: str) -> str:
    return text


def _confidence(text: str, setting: str) -> float:
    """0.95 or 95%: a confidence level strictly between 0.5 and 1."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SettingsError(
            f"{setting}: {text!r} is not a confidence level like 0.95 or 95%"
        ) from None
    if not 0.5 <= value < 1:
        raise SettingsError(f"{setting}: {text!r} must be at least 0.5 and below 1 (e.g. 0.95)")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str, str], str]:
    """One of ``choices``, in any case; returned in theirs."""
    by_folded = {c.casefold(): c for c in choices}

    def parse(text: str, setting: str) -> str:
        choice = by_folded.get(text.casefold())
        if choice is None:
            raise SettingsError(f"{setting}: {text!r} is not one of {', '.join(choices)}")
        return choice

    return parse


def _non_empty(text: str, setting: str) -> str:
    if not text.strip():
        raise SettingsError(f"{setting}: empty")
    return text


def _secret(text: str, setting: str) -> Secret:
    # Never echo the value, not even in an error.
    if not text:
        raise SettingsError(f"{setting}: empty")
    return Secret(text)


def _readable_file(text: str, setting: str) -> Path:
    path = Path(text)
    try:
        path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"{setting}: cannot read {text!r}: {exc.strerror}") from None
    return path


#: ``--delivery``: a fetch at a time to the stages, or Faust's per-record streams
DELIVERIES = ("batch", "stream")
#: ``--event-loop``
EVENT_LOOPS = ("uvloop", "asyncio")

#: field -> (flag, environment variable, parser)
SETTINGS: dict[str, tuple[str, str, Callable[[str, str], Any]]] = {
    "bootstrap": ("--bootstrap", "CX_KAFKA_BOOTSTRAP", parse_bootstrap),
    "web_port": ("--web-port", "CX_WEB_PORT", _int_in(1, 65535)),
    "web_host": ("--web-host", "CX_WEB_HOST", _str),
    "data_dir": ("--data-dir", "CX_DATA_DIR", _path),
    "rules": ("--rules", "CX_RULES", _rules),
    "schedules": ("--schedules", "CX_SCHEDULES", _schedules),
    "sla_warning": ("--sla-warning", "CX_SLA_WARNING", _share),
    "app_id": ("--app-id", "CX_APP_ID", _topic),
    "tickets_topic": ("--tickets-topic", "CX_TOPIC_TICKETS", _topic),
    "surveys_topic": ("--surveys-topic", "CX_TOPIC_SURVEYS", _topic),
    "alerts_topic": ("--alerts-topic", "CX_TOPIC_ALERTS", _topic),
    "deadletter_topic": ("--deadletter-topic", "CX_TOPIC_DEADLETTER", _topic),
    "partitions": ("--partitions", "CX_PARTITIONS", _int_in(1, 1024)),
    "replication_factor": ("--replication-factor", "CX_REPLICATION_FACTOR", _int_in(1, 16)),
    "standby_replicas": ("--standby-replicas", "CX_STANDBY_REPLICAS", _int_in(0, 8)),
    "windows": ("--windows", "CX_WINDOWS", parse_windows),
    "dimensions": ("--dimensions", "CX_DIMENSIONS", _dimensions),
    "max_label_values": ("--max-label-values", "CX_MAX_LABEL_VALUES", _int_in(1, 10_000)),
    "dedup_horizon_s": ("--dedup-horizon", "CX_DEDUP_HORIZON", _seconds_at_least(3600)),
    "ticket_retention_s": ("--ticket-retention", "CX_TICKET_RETENTION", _seconds_at_least(3600)),
    "tick_interval_s": ("--tick-interval", "CX_TICK_INTERVAL", _seconds_at_least(0.1)),
    "sweep_interval_s": ("--sweep-interval", "CX_SWEEP_INTERVAL", _seconds_at_least(1)),
    "alertmanager_url": ("--alertmanager", "CX_ALERTMANAGER_URL", _url),
    "log_level": ("--log-level", "CX_LOG_LEVEL", _log_level),
    "confidence": ("--confidence", "CX_CONFIDENCE", _confidence),
    "stall_timeout_s": ("--stall-timeout", "CX_STALL_TIMEOUT", _seconds_at_least(1)),
    "preload_max_records": (
        "--preload-max-records",
        "CX_PRELOAD_MAX_RECORDS",
        _int_in(0, 10**12),
    ),
    "delivery": ("--delivery", "CX_DELIVERY", _choice(DELIVERIES)),
    "event_loop": ("--event-loop", "CX_EVENT_LOOP", _choice(EVENT_LOOPS)),
    "kafka_security_protocol": (
        "--kafka-security-protocol",
        "CX_KAFKA_SECURITY_PROTOCOL",
        _choice(PROTOCOLS),
    ),
    "kafka_sasl_mechanism": (
        "--kafka-sasl-mechanism",
        "CX_KAFKA_SASL_MECHANISM",
        _choice(MECHANISMS),
    ),
    "kafka_sasl_username": ("--kafka-sasl-username", "CX_KAFKA_SASL_USERNAME", _non_empty),
    # A flag would show the password to every user of the machine (ps): the
    # environment or a file only, so the flag is the file's.
    "kafka_sasl_password": ("", "CX_KAFKA_SASL_PASSWORD", _secret),
    "kafka_sasl_password_file": (
        "--kafka-sasl-password-file",
        "CX_KAFKA_SASL_PASSWORD_FILE",
        _readable_file,
    ),
    "kafka_ssl_cafile": ("--kafka-ssl-cafile", "CX_KAFKA_SSL_CAFILE", _readable_file),
}

#: CX_* variables read by other commands, not by the worker's Settings.
OTHER_VARIABLES = frozenset({"CX_TEST_BOOTSTRAP", "CX_KAFKA_START_TIMEOUT"})


# What Kubernetes injects into every pod for each Service in its namespace
# (unless enableServiceLinks is false), for a Service "cx" or "cx-<name>":
# CX[_NAME]_SERVICE_HOST=10.0.0.11, CX[_NAME]_SERVICE_PORT[_<PORTNAME>]=6066,
# CX[_NAME]_PORT=tcp://10.0.0.11:6066 and, per port and protocol,
# CX[_NAME]_PORT_6066_TCP=tcp://10.0.0.11:6066 with _PROTO=tcp, _PORT=6066,
# _ADDR=10.0.0.11. Names *and* values must have these shapes, so a typo such
# as CX_WEBS_PORT=6066 (a plain number, not tcp://...) is still an error.
_SVC = r"CX(?:_[A-Z0-9_]+?)?"
_ADDR_URL = re.compile(r"^(tcp|udp|sctp)://(\[[0-9a-fA-F:]+\]|[0-9a-fA-F.:]+):(\d{1,5})$")
_SERVICE_LINK_NAMES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^{_SVC}_SERVICE_HOST$"), "ip"),
    (re.compile(rf"^{_SVC}_SERVICE_PORT(?:_[A-Z0-9_]+)?$"), "port"),
    (re.compile(rf"^{_SVC}_PORT$"), "url"),
    (re.compile(rf"^{_SVC}_PORT_\d{{1,5}}_(?:TCP|UDP|SCTP)$"), "url"),
    (re.compile(rf"^{_SVC}_PORT_\d{{1,5}}_(?:TCP|UDP|SCTP)_PROTO$"), "proto"),
    (re.compile(rf"^{_SVC}_PORT_\d{{1,5}}_(?:TCP|UDP|SCTP)_PORT$"), "port"),
    (re.compile(rf"^{_SVC}_PORT_\d{{1,5}}_(?:TCP|UDP|SCTP)_ADDR$"), "ip"),
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def is_service_link(name: str, value: str) -> bool:
    """Whether NAME=VALUE is a Kubernetes service-link variable, not a setting."""
    # Several name shapes can match (CX_PORT_6066_TCP_PORT also looks like the
    # _PORT of a Service "cx-port-6066-tcp"): any one whose value fits will do.
    return any(
        pattern.match(name) and _value_fits(shape, value) for pattern, shape in _SERVICE_LINK_NAMES
    )


def _value_fits(shape: str, value: str) -> bool:
    if shape == "ip":
        return _is_ip(value)
    if shape == "port":
        return value.isdigit() and 0 < int(value) < 65536
    if shape == "proto":
        return value in ("tcp", "udp", "sctp")
    match = _ADDR_URL.match(value)
    return match is not None and _is_ip(match.group(2))


def load_settings(flags: Mapping[str, str | None], environ: Mapping[str, str]) -> Settings:
    """Build settings from flag values (by field name; None = not given) and the environment."""
    known_env = {env for _, env, _ in SETTINGS.values()} | OTHER_VARIABLES
    unknown = sorted(
        k
        for k, v in environ.items()
        if k.startswith("CX_") and k not in known_env and not is_service_link(k, v)
    )
    if unknown:
        raise SettingsError(
            f"unknown setting {unknown[0]} in the environment (known: {', '.join(sorted(known_env))})"
        )
    values: dict[str, Any] = {}
    for name, (flag, env, parse) in SETTINGS.items():
        raw = flags.get(name)
        label = flag
        if raw is None and env in environ:
            raw, label = environ[env], env
        if raw is not None:
            values[name] = parse(raw, label)
    settings = Settings(**values)
    if settings.dedup_horizon_s < 3600:
        raise SettingsError("--dedup-horizon / CX_DEDUP_HORIZON: must be at least 1h")
    return _check_kafka_security(settings)


def _check_kafka_security(s: Settings) -> Settings:
    """SASL fields exactly with a SASL_* protocol, a CA file only with TLS;
    the password read from its file. Messages name settings, never values."""
    protocol = s.kafka_security_protocol
    sasl = protocol in ("SASL_PLAINTEXT", "SASL_SSL")
    if s.kafka_sasl_password is not None and s.kafka_sasl_password_file is not None:
        raise SettingsError(f"{PASSWORD_SETTING}: give the password or its file, not both")
    password = s.kafka_sasl_password
    if s.kafka_sasl_password_file is not None:
        text = s.kafka_sasl_password_file.read_text(errors="replace").rstrip("\r\n")
        if not text:
            raise SettingsError(
                f"--kafka-sasl-password-file / CX_KAFKA_SASL_PASSWORD_FILE: "
                f"{str(s.kafka_sasl_password_file)!r} is empty"
            )
        password = Secret(text)
    given = {
        MECHANISM_SETTING: s.kafka_sasl_mechanism is not None,
        USERNAME_SETTING: s.kafka_sasl_username is not None,
        PASSWORD_SETTING: password is not None,
    }
    if sasl:
        for setting, present in given.items():
            if not present:
                raise SettingsError(f"{setting}: required when {PROTOCOL_SETTING} is {protocol}")
    else:
        for setting, present in given.items():
            if present:
                raise SettingsError(
                    f"{setting}: set, but {PROTOCOL_SETTING} is {protocol} "
                    "(use SASL_SSL or SASL_PLAINTEXT to authenticate)"
                )
    if s.kafka_ssl_cafile is not None and protocol not in ("SSL", "SASL_SSL"):
        raise SettingsError(
            f"{CAFILE_SETTING}: set, but {PROTOCOL_SETTING} is {protocol} (use SSL or SASL_SSL)"
        )
    return dataclasses.replace(s, kafka_sasl_password=password, kafka_sasl_password_file=None)
