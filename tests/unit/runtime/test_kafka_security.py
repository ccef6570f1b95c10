"""Production Kafka security, without servers: SASL/SCRAM over TLS and TLS client certificates
are built from CARELINK_KAFKA_* exactly as Apache Kafka needs them, by every client factory
(`client_options`, `make_producer`, `make_broker`), and the password never shows in a repr.

Certificates are throwaway and self-signed, made in tmp_path with the `cryptography` package
if installed, else with the `openssl` command; the tests skip only when neither is there.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLScram256, SASLScram512

from services.lib.runtime.kafka import client_options, make_broker, make_producer
from services.lib.runtime.settings import KafkaSettings, ServiceSettings

PASSWORD = "pa55-Wörd-that-must-not-leak-7f3a9c"
USERNAME = "carelink-intake"
BOOTSTRAP = "kafka-1.internal:9093,kafka-2.internal:9093"
CA_NAME = "carelink-test-ca"


@dataclass(frozen=True)
class Pki:
    ca: Path  # the self-signed certificate, as the CA file
    cert: Path  # the same certificate, as the client's
    key: Path  # its private key
    combined: Path  # certificate and key in one PEM file
    other_key: Path  # a key that does not belong to the certificate


def _with_cryptography(directory: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False

    def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(pem_key(key))
    (directory / "other-key.pem").write_bytes(pem_key(ec.generate_private_key(ec.SECP256R1())))
    return True


def _with_openssl(directory: Path) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    run(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", f"/CN={CA_NAME}",
        "-addext", "basicConstraints=critical,CA:TRUE",
    )  # fmt: skip
    run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-out", "other-key.pem")  # fmt: skip
    return True


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    if not (_with_cryptography(tmp_path) or _with_openssl(tmp_path)):
        pytest.skip("neither the cryptography package nor the openssl command is available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    ca = tmp_path / "ca.pem"
    ca.write_bytes(cert.read_bytes())
    return Pki(ca=ca, cert=cert, key=key, combined=combined, other_key=tmp_path / "other-key.pem")


@pytest.fixture(autouse=True)
def clean_kafka_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: nothing from the shell running the tests."""
    for name in list(os.environ):
        if name.startswith("CARELINK_KAFKA_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARELINK_KAFKA_BOOTSTRAP", BOOTSTRAP)


def sasl_ssl(monkeypatch: pytest.MonkeyPatch, pki: Pki, mechanism: str | None) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    if mechanism is not None:
        monkeypatch.setenv("CARELINK_KAFKA_SASL_MECHANISM", mechanism)
    monkeypatch.setenv("CARELINK_KAFKA_SASL_USERNAME", USERNAME)
    monkeypatch.setenv("CARELINK_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CAFILE", str(pki.ca))


def assert_verifies_with_our_ca(context: object) -> None:
    """A client context that checks the broker: certificate required, hostname checked,
    our CA loaded, nothing older than TLS 1.2."""
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    subjects = [dict(pair[0] for pair in ca["subject"]) for ca in context.get_ca_certs()]
    assert {"commonName": CA_NAME} in subjects


MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256"]


# ------------------------------------------------------------------ client_options


def test_plaintext_when_nothing_is_set() -> None:
    options = client_options(KafkaSettings())

    assert options["bootstrap_servers"] == BOOTSTRAP.split(",")
    assert options["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in options
    assert not {k for k in options if k.startswith("sasl_")}


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_sasl_ssl_with_scram_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, mechanism: str
) -> None:
    sasl_ssl(monkeypatch, pki, mechanism)

    options = client_options(KafkaSettings())

    assert options["bootstrap_servers"] == ["kafka-1.internal:9093", "kafka-2.internal:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert options["sasl_plain_username"] == USERNAME
    assert options["sasl_plain_password"] == PASSWORD  # the secret's value, for the client only
    assert_verifies_with_our_ca(options["ssl_context"])


def test_sasl_without_a_mechanism_uses_scram_sha_512(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    sasl_ssl(monkeypatch, pki, None)

    options = client_options(KafkaSettings())

    assert options["sasl_mechanism"] == "SCRAM-SHA-512"


def test_tls_with_a_client_certificate(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CAFILE", str(pki.ca))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CERTFILE", str(pki.cert))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_KEYFILE", str(pki.key))

    settings = KafkaSettings()
    options = client_options(settings)

    assert settings.ssl_certfile == pki.cert
    assert settings.ssl_keyfile == pki.key
    assert options["security_protocol"] == "SSL"
    assert not {k for k in options if k.startswith("sasl_")}
    assert_verifies_with_our_ca(options["ssl_context"])


def test_client_certificate_and_key_in_one_file(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    sasl_ssl(monkeypatch, pki, "SCRAM-SHA-512")
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CERTFILE", str(pki.combined))

    options = client_options(KafkaSettings())

    assert options["security_protocol"] == "SASL_SSL"
    assert_verifies_with_our_ca(options["ssl_context"])


def test_the_client_key_is_really_loaded(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    """A key that does not match the certificate is refused when the options are built,
    which shows the certificate and key are loaded into the context, not ignored."""
    monkeypatch.setenv("CARELINK_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CAFILE", str(pki.ca))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CERTFILE", str(pki.cert))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_KEYFILE", str(pki.other_key))

    with pytest.raises(ssl.SSLError):
        client_options(KafkaSettings())


def test_a_missing_ca_file_fails_at_start_not_at_first_use(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, tmp_path: Path
) -> None:
    sasl_ssl(monkeypatch, pki, "SCRAM-SHA-512")
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CAFILE", str(tmp_path / "missing-ca.pem"))

    with pytest.raises(OSError):  # FileNotFoundError
        client_options(KafkaSettings())


# ------------------------------------------------------------------ the relay's producer


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_make_producer_uses_sasl_ssl(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, mechanism: str
) -> None:
    sasl_ssl(monkeypatch, pki, mechanism)

    producer = make_producer(KafkaSettings(), client_id="carelink-intake-relay")

    client = producer.client  # built, never started: no broker is contacted
    assert client._bootstrap_servers == BOOTSTRAP.split(",")
    assert client._security_protocol == "SASL_SSL"
    assert client._sasl_mechanism == mechanism
    assert client._sasl_plain_username == USERNAME
    assert client._sasl_plain_password == PASSWORD
    assert_verifies_with_our_ca(client._ssl_context)


async def test_make_producer_with_a_client_certificate(
    monkeypatch: pytest.MonkeyPatch, pki: Pki
) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CAFILE", str(pki.ca))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CERTFILE", str(pki.cert))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_KEYFILE", str(pki.key))

    producer = make_producer(KafkaSettings(), client_id="carelink-intake-relay")

    assert producer.client._security_protocol == "SSL"
    assert_verifies_with_our_ca(producer.client._ssl_context)


# ------------------------------------------------------------------ the FastStream broker


@pytest.mark.parametrize(
    ("mechanism", "security_class"),
    [("SCRAM-SHA-512", SASLScram512), ("SCRAM-SHA-256", SASLScram256)],
)
def test_make_broker_uses_sasl_ssl(
    monkeypatch: pytest.MonkeyPatch, pki: Pki, mechanism: str, security_class: type
) -> None:
    sasl_ssl(monkeypatch, pki, mechanism)

    broker = make_broker(KafkaSettings(), client_id="carelink-intake", logger=None)

    # What FastStream hands to every aiokafka consumer and producer it creates.
    connection = broker._connection_kwargs
    assert connection["bootstrap_servers"] == BOOTSTRAP.split(",")
    assert connection["security_protocol"] == "SASL_SSL"
    assert connection["sasl_mechanism"] == mechanism
    assert connection["sasl_plain_username"] == USERNAME
    assert connection["sasl_plain_password"] == PASSWORD
    assert_verifies_with_our_ca(connection["ssl_context"])
    assert isinstance(broker.specification.security, security_class)


def test_make_broker_with_tls_only(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CAFILE", str(pki.ca))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_CERTFILE", str(pki.cert))
    monkeypatch.setenv("CARELINK_KAFKA_SSL_KEYFILE", str(pki.key))

    broker = make_broker(KafkaSettings(), client_id="carelink-intake", logger=None)

    connection = broker._connection_kwargs
    assert connection["security_protocol"] == "SSL"
    assert "sasl_plain_password" not in connection
    assert connection.get("sasl_mechanism") is None
    assert_verifies_with_our_ca(connection["ssl_context"])
    assert type(broker.specification.security) is BaseSecurity


def test_make_broker_in_plaintext_has_no_security() -> None:
    broker = make_broker(KafkaSettings(), client_id="carelink-intake", logger=None)

    connection = broker._connection_kwargs
    assert connection.get("security_protocol", "PLAINTEXT") == "PLAINTEXT"
    assert connection.get("ssl_context") is None


# ------------------------------------------------------------------ the secret stays secret


def test_the_password_never_shows_in_a_repr(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    sasl_ssl(monkeypatch, pki, "SCRAM-SHA-512")
    monkeypatch.setenv("CARELINK_SERVICE", "intake")

    kafka = KafkaSettings()
    service = ServiceSettings()  # reads CARELINK_KAFKA_* too, nested

    assert service.kafka.sasl_password is not None
    assert service.kafka.sasl_password.get_secret_value() == PASSWORD
    shown = [
        repr(kafka),
        str(kafka),
        repr(service),
        str(service),
        repr(kafka.sasl_password),
        kafka.model_dump_json(),
        service.model_dump_json(),
        repr(kafka.model_dump()),
        repr(service.model_dump()),
    ]
    for text in shown:
        assert PASSWORD not in text
        assert USERNAME in text or "**" in text  # the rest is still there to read
