"""TLS and SASL against a real broker with a SASL_SSL listener.

The session starts its own broker (deploy/kafka-local/kafka.sh) with a test
CA and broker certificate made here, and a SCRAM/PLAIN user created when its
log dir is formatted. Valid credentials work end to end; a wrong password and
an untrusted certificate fail fast, with a message naming the setting, and
the password appears nowhere: not in logs, /metrics, /healthz or errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.security.certs import Pki, make_pki
from tests.support import REPO, Topics, WorkerProcess, free_port, samples, total, utc, wait_for

pytestmark = pytest.mark.integration

KAFKA_SH = REPO / "deploy" / "kafka-local" / "kafka.sh"
USER = "cx-worker"
PASSWORD = "Sasl-Secret-7f3a9c"  # grepped for in every output below
FAIL_FAST_S = 20.0  # the bound on a refused start-up (measured: well under 2 s)


@dataclass(frozen=True)
class SaslBroker:
    bootstrap: str  # SASL_SSL listener
    plaintext: str
    pki: Pki


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    base = tmp_path_factory.mktemp("sasl-kafka")
    pki = make_pki(base / "pki")
    port, cport, sport = free_port(), free_port(), free_port()
    data = base / "kafka"
    result = subprocess.run(
        [
            str(KAFKA_SH),
            "start",
            "--port",
            str(port),
            "--controller-port",
            str(cport),
            "--sasl-ssl-port",
            str(sport),
            "--tls-pem",
            str(pki.broker_pem),
            "--user",
            f"{USER}:{PASSWORD}",
            "--dir",
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"SASL_SSL broker did not start:\n{result.stdout}\n{result.stderr}")
    try:
        yield SaslBroker(f"127.0.0.1:{sport}", f"127.0.0.1:{port}", pki)
    finally:
        subprocess.run([str(KAFKA_SH), "stop", "--dir", str(data)], timeout=120, check=False)


def _env(broker: SaslBroker, mechanism: str, password: str, cafile: Path) -> dict[str, str]:
    return {
        "CX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "CX_KAFKA_SASL_MECHANISM": mechanism,
        "CX_KAFKA_SASL_USERNAME": USER,
        "CX_KAFKA_SASL_PASSWORD": password,
        "CX_KAFKA_SSL_CAFILE": str(cafile),
    }


def _cli(
    args: list[str], env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CX_")}
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        input=stdin,
        capture_output=True,
        env=clean | env,
        cwd=REPO,
        timeout=120,
    )


def test_worker_over_sasl_ssl_end_to_end_and_no_secret_anywhere(
    sasl_broker: SaslBroker, topics: Topics, workdir: Path
) -> None:
    env = _env(sasl_broker, "SCRAM-SHA-512", PASSWORD, sasl_broker.pki.ca_pem)
    worker = WorkerProcess(sasl_broker.bootstrap, topics, workdir / "w", env=env)
    try:
        worker.wait_ready()
        now = time.time()
        docs = [
            {
                "event_id": f"s{i}",
                "type": "survey.nps",
                "occurred_at": utc(now - 60),
                "score": i % 11,
                "channel": "web",
            }
            for i in range(25)
        ]
        lines = b"\n".join(orjson.dumps(d) for d in docs) + b"\n"
        # `cxstream produce` over SASL_SSL with the other SCRAM mechanism.
        produced = _cli(
            [
                "produce",
                "-",
                "--bootstrap",
                sasl_broker.bootstrap,
                "--surveys-topic",
                topics.surveys,
                "--tickets-topic",
                topics.tickets,
            ],
            _env(sasl_broker, "SCRAM-SHA-256", PASSWORD, sasl_broker.pki.ca_pem),
            stdin=lines,
        )
        assert produced.returncode == 0, produced.stderr.decode()
        wait_for(
            lambda: total(samples(worker.scrape()), "cx_nps_responses_total") == 25,
            90,
            what="25 NPS responses over SASL_SSL",
        )
        smp = samples(worker.scrape())
        assert total(smp, "cx_events_total", source="surveys", outcome="accepted") == 25
        outputs = {
            "/metrics": worker.get("/metrics"),
            "/healthz": worker.get("/healthz"),
            "produce stderr": produced.stderr + produced.stdout,
        }
    finally:
        worker.stop()
    outputs["worker log"] = worker.log_path.read_bytes()
    assert b"SASL_SSL, SCRAM-SHA-512 as 'cx-worker'" in outputs["worker log"]
    for where, body in outputs.items():
        assert PASSWORD.encode() not in body, f"the password appears in {where}"


def test_plain_mechanism_works_too(sasl_broker: SaslBroker, topics: Topics) -> None:
    line = orjson.dumps(
        {"event_id": "p1", "type": "survey.csat", "occurred_at": utc(time.time()), "score": 4}
    )
    result = _cli(
        ["produce", "-", "--bootstrap", sasl_broker.bootstrap, "--surveys-topic", topics.surveys],
        _env(sasl_broker, "PLAIN", PASSWORD, sasl_broker.pki.ca_pem),
        stdin=line + b"\n",
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"sent 1 events" in result.stderr


@pytest.mark.parametrize("fault", ["wrong password", "untrusted certificate"])
def test_refused_connection_fails_fast_naming_the_setting(
    sasl_broker: SaslBroker, topics: Topics, workdir: Path, fault: str
) -> None:
    wrong_password = "Not-" + PASSWORD  # contains the real one: grep for it below
    if fault == "wrong password":
        env = _env(sasl_broker, "SCRAM-SHA-256", wrong_password, sasl_broker.pki.ca_pem)
        named, cause = "CX_KAFKA_SASL_PASSWORD", "rejected SCRAM-SHA-256 authentication"
    else:
        env = _env(sasl_broker, "SCRAM-SHA-256", PASSWORD, sasl_broker.pki.other_ca_pem)
        named, cause = "CX_KAFKA_SSL_CAFILE", "is not trusted"
    for command in (
        [
            "worker",
            *topics.flags(),
            "--data-dir",
            str(workdir / "d"),
            "--web-port",
            str(free_port()),
        ],
        ["produce", "-", "--surveys-topic", topics.surveys],
    ):
        t0 = time.monotonic()
        result = _cli([*command, "--bootstrap", sasl_broker.bootstrap], env, stdin=b"{}\n")
        took = time.monotonic() - t0
        err = (result.stderr + result.stdout).decode()
        print(f"{fault}: `cxstream {command[0]}` exited {result.returncode} in {took:.1f} s")
        assert result.returncode != 0, err
        assert took < FAIL_FAST_S, f"took {took:.1f} s"
        assert named in err and cause in err, err
        assert PASSWORD not in err and wrong_password not in err
