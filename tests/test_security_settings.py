"""Kafka security settings: checked together, errors name the setting, the
password never shows (repr, errors, log description)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.errors import SettingsError
from streams.kafka_security import kafka_python_kwargs, ssl_context
from streams.settings import load_settings

PASSWORD = "pa55-Do-Not-Print"
SASL = {
    "CX_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "CX_KAFKA_SASL_MECHANISM": "scram-sha-512",
    "CX_KAFKA_SASL_USERNAME": "alice",
    "CX_KAFKA_SASL_PASSWORD": PASSWORD,
}


def _without(key: str) -> dict[str, str]:
    return {k: v for k, v in SASL.items() if k != key}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CX_KAFKA_SECURITY_PROTOCOL": "TLS"}, "CX_KAFKA_SECURITY_PROTOCOL"),
        ({**SASL, "CX_KAFKA_SASL_MECHANISM": "GSSAPI"}, "CX_KAFKA_SASL_MECHANISM"),
        (_without("CX_KAFKA_SASL_MECHANISM"), "CX_KAFKA_SASL_MECHANISM"),
        (_without("CX_KAFKA_SASL_USERNAME"), "CX_KAFKA_SASL_USERNAME"),
        (_without("CX_KAFKA_SASL_PASSWORD"), "CX_KAFKA_SASL_PASSWORD"),
        # SASL settings without a SASL protocol: a forgotten protocol, not ignored
        ({"CX_KAFKA_SASL_MECHANISM": "PLAIN"}, "CX_KAFKA_SASL_MECHANISM"),
        ({"CX_KAFKA_SASL_USERNAME": "alice"}, "CX_KAFKA_SASL_USERNAME"),
        ({"CX_KAFKA_SSL_CAFILE": __file__}, "CX_KAFKA_SSL_CAFILE"),
        (
            {"CX_KAFKA_SECURITY_PROTOCOL": "SSL", "CX_KAFKA_SSL_CAFILE": "/nope.pem"},
            "CX_KAFKA_SSL_CAFILE",
        ),
        ({**SASL, "CX_KAFKA_SASL_PASSWORD_FILE": __file__}, "CX_KAFKA_SASL_PASSWORD_FILE"),
        (
            {**_without("CX_KAFKA_SASL_PASSWORD"), "CX_KAFKA_SASL_PASSWORD_FILE": "/nope"},
            "CX_KAFKA_SASL_PASSWORD_FILE",
        ),
        ({"CX_STALL_TIMEOUT": "0s"}, "CX_STALL_TIMEOUT"),
    ],
)
def test_bad_security_settings_name_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings({}, env)
    assert named in str(err.value)
    assert PASSWORD not in str(err.value)


def test_sasl_settings_are_normalised_and_the_password_never_prints() -> None:
    s = load_settings({}, SASL)
    sec = s.kafka_security
    assert (sec.protocol, sec.mechanism, sec.username) == ("SASL_SSL", "SCRAM-SHA-512", "alice")
    assert sec.password is not None and sec.password.reveal() == PASSWORD
    for text in (repr(s), str(s), repr(sec), sec.describe(), str(sec.password)):
        assert PASSWORD not in text
    kwargs = kafka_python_kwargs(sec, ssl_context(sec))
    assert kwargs["sasl_plain_password"] == PASSWORD and kwargs["security_protocol"] == "SASL_SSL"


def test_password_from_a_file_without_its_newline(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    env = {**_without("CX_KAFKA_SASL_PASSWORD"), "CX_KAFKA_SASL_PASSWORD_FILE": str(secret)}
    pw = load_settings({}, env).kafka_security.password
    assert pw is not None and pw.reveal() == PASSWORD
    secret.write_text("\n")
    with pytest.raises(SettingsError, match="CX_KAFKA_SASL_PASSWORD_FILE"):
        load_settings({}, env)


def test_plaintext_by_default_and_loopback_web_host() -> None:
    s = load_settings({}, {})
    assert s.kafka_security.protocol == "PLAINTEXT" and not s.kafka_security.sasl
    assert kafka_python_kwargs(s.kafka_security, None) == {"security_protocol": "PLAINTEXT"}
    assert s.web_host == "127.0.0.1" and s.stall_timeout_s == 300
