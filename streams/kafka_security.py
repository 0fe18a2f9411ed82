"""How cxstream authenticates to Kafka and encrypts the connection.

One ``KafkaSecurity`` value (built by ``streams.settings``) is turned here
into what each client needs: kafka-python keyword arguments (topic set-up,
``cxstream produce``), Faust ``broker_credentials`` (the worker), and a
start-up probe that fails fast with the cause (untrusted certificate, wrong
credentials, unreachable broker) instead of a client retrying forever.

The password is a ``Secret``: its ``repr`` and ``str`` never show it, so it
cannot reach a log line, an error message or an endpoint by accident.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.errors import BrokerError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

PROTOCOL_SETTING = "--kafka-security-protocol / CX_KAFKA_SECURITY_PROTOCOL"
MECHANISM_SETTING = "--kafka-sasl-mechanism / CX_KAFKA_SASL_MECHANISM"
USERNAME_SETTING = "--kafka-sasl-username / CX_KAFKA_SASL_USERNAME"
PASSWORD_SETTING = (
    "CX_KAFKA_SASL_PASSWORD or --kafka-sasl-password-file / CX_KAFKA_SASL_PASSWORD_FILE"
)
CAFILE_SETTING = "--kafka-ssl-cafile / CX_KAFKA_SSL_CAFILE"


class Secret:
    """A value that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class KafkaSecurity:
    """Checked settings (see ``streams.settings``): SASL fields are set
    exactly when the protocol is SASL_*, a CA file only with TLS."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: Secret | None = None
    cafile: Path | None = None

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def describe(self) -> str:
        """For logs: what is used, never the password."""
        parts = [self.protocol]
        if self.sasl:
            parts.append(f"{self.mechanism} as {self.username!r}")
        if self.tls:
            parts.append(f"CA {self.cafile}" if self.cafile else "system CAs")
        return ", ".join(parts)


def ssl_context(sec: KafkaSecurity) -> ssl.SSLContext | None:
    """Server certificate and host name verified; the CA file or the system's CAs."""
    if not sec.tls:
        return None
    try:
        return ssl.create_default_context(cafile=str(sec.cafile) if sec.cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise BrokerError(
            f"{CAFILE_SETTING}: cannot load CA certificates from {sec.cafile}: {exc}"
        ) from None


def kafka_python_kwargs(sec: KafkaSecurity, context: ssl.SSLContext | None) -> dict[str, Any]:
    """Keyword arguments for kafka-python's clients (aiokafka's take the same)."""
    kwargs: dict[str, Any] = {"security_protocol": sec.protocol}
    if context is not None:
        kwargs["ssl_context"] = context
    if sec.sasl:
        assert sec.password is not None  # checked by the settings
        kwargs.update(
            sasl_mechanism=sec.mechanism,
            sasl_plain_username=sec.username,
            sasl_plain_password=sec.password.reveal(),
        )
    return kwargs


def faust_credentials(sec: KafkaSecurity, context: ssl.SSLContext | None) -> Any:
    """``broker_credentials`` for ``faust.App`` (None for PLAINTEXT)."""
    import faust

    if sec.sasl:
        assert sec.password is not None
        creds = faust.SASLCredentials(
            username=sec.username,
            password=sec.password.reveal(),
            mechanism=sec.mechanism,
            ssl_context=context,  # SASL_SSL when given, SASL_PLAINTEXT otherwise
        )
        return creds
    if sec.tls:
        return faust.SSLCredentials(context)
    return None


def probe(bootstrap: str, sec: KafkaSecurity, timeout_s: float = 10.0) -> None:
    """Connect (and authenticate) to the bootstrap servers once; raise a
    ``BrokerError`` naming the cause and the setting to fix when none works.

    Clients retry bad credentials or an untrusted certificate as if the
    broker were merely down; this says why, within ``timeout_s``."""
    context = ssl_context(sec)
    errors: list[str] = []
    refused = True
    for server in bootstrap.split(","):
        host, _, port = server.rpartition(":")
        host = host.strip("[]")
        try:
            asyncio.run(_connect(host, int(port), sec, context, timeout_s))
            return
        except ssl.SSLCertVerificationError as exc:
            raise BrokerError(
                f"{CAFILE_SETTING}: the certificate of the broker at {server} is not trusted: "
                f"{exc.verify_message} (give the CA that signed it)"
            ) from None
        except ssl.SSLError as exc:
            raise BrokerError(
                f"{PROTOCOL_SETTING}: TLS handshake with {server} failed ({exc.reason}); "
                f"is {server} a {sec.protocol} listener?"
            ) from None
        except Exception as exc:
            kind = type(exc).__name__
            if "Sasl" in kind or "Authentication" in kind:
                raise BrokerError(
                    f"{USERNAME_SETTING}, {PASSWORD_SETTING}: the broker at {server} rejected "
                    f"{sec.mechanism} authentication as {sec.username!r}: {_broker_message(exc)}"
                ) from None
            errors.append(f"{server}: {_broker_message(exc) or kind}")
            refused = refused and isinstance(exc, ConnectionRefusedError)
    # A listener that answers but hangs up speaks another protocol.
    hint = "" if refused else f"; is it a listener for {sec.protocol}? ({PROTOCOL_SETTING})"
    raise BrokerError(
        f"--bootstrap / CX_KAFKA_BOOTSTRAP: cannot reach Kafka ({sec.protocol}) at "
        f"{bootstrap}: {'; '.join(errors)}{hint}"
    )


async def _connect(
    host: str, port: int, sec: KafkaSecurity, context: ssl.SSLContext | None, timeout_s: float
) -> None:
    from aiokafka.conn import create_conn

    kwargs: dict[str, Any] = {}
    if sec.sasl:
        assert sec.password is not None
        kwargs = {
            "sasl_mechanism": sec.mechanism,
            "sasl_plain_username": sec.username,
            "sasl_plain_password": sec.password.reveal(),
        }
    conn = await asyncio.wait_for(
        create_conn(
            host,
            port,
            client_id="cxstream-probe",
            request_timeout_ms=int(timeout_s * 1000),
            ssl_context=context,
            security_protocol=sec.protocol,
            **kwargs,
        ),
        timeout_s,
    )
    conn.close()


def _broker_message(exc: BaseException) -> str:
    # Broker and socket messages name the mechanism or the address, never a
    # password; still, strip anything after a newline (stack details).
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
