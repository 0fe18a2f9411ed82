"""A throw-away certificate authority and broker certificate, made with openssl.

The broker reads one PEM file (PKCS#8 key + certificate chain); Python
clients trust the CA's PEM file (``CX_KAFKA_SSL_CAFILE``).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca_pem: Path  # what clients trust
    broker_pem: Path  # the broker's key and certificate chain
    other_ca_pem: Path  # a CA that did not sign the broker's certificate


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{result.stderr}")


def _ca(name: str, d: Path) -> tuple[Path, Path]:
    key, cert = d / f"{name}.key", d / f"{name}.pem"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", key.name, cwd=d)  # fmt: skip
    _openssl("req", "-x509", "-new", "-key", key.name, "-sha256", "-days", "2",
             "-subj", f"/CN=cxstream test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", cert.name, cwd=d)  # fmt: skip
    return key, cert


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = _ca("ca", d)
    _, other_pem = _ca("other-ca", d)
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-out", "broker.key", cwd=d)  # fmt: skip
    _openssl("req", "-new", "-key", "broker.key", "-subj", "/CN=localhost",
             "-out", "broker.csr", cwd=d)  # fmt: skip
    _openssl("x509", "-req", "-in", "broker.csr", "-CA", ca_pem.name, "-CAkey", ca_key.name,
             "-CAcreateserial", "-days", "2", "-sha256", "-extfile", "san.ext",
             "-out", "broker.crt", cwd=d)  # fmt: skip
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.p8", cwd=d)
    broker_pem = d / "broker.pem"
    broker_pem.write_text(
        (d / "broker.p8").read_text() + (d / "broker.crt").read_text() + ca_pem.read_text()
    )
    return Pki(ca_pem=ca_pem, broker_pem=broker_pem, other_ca_pem=other_pem)
