"""The FHIR gateway's client authentication (issue 14): SMART Backend Services
private_key_jwt assertions, per-hospital clients, scopes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.fhirgateway.auth import (
    AuthError,
    Clients,
    grant,
    load_clients,
    rights,
    verify_assertion,
)
from services.lib.policy import load_registry
from services.lib.policy.policy import ConfigError
from tests.fhir_clients import EhrClient, write_clients_file

TOKEN_URL = "https://gateway.example/fhir/auth/token"


@pytest.fixture
def police() -> EhrClient:
    return EhrClient.new("police-hospital")


@pytest.fixture
def severance() -> EhrClient:
    return EhrClient.new("severance")


@pytest.fixture
def clients(tmp_path: Path, police: EhrClient, severance: EhrClient) -> Clients:
    return load_clients(
        write_clients_file(tmp_path / "c.yaml", [police, severance]), load_registry()
    )


def now() -> datetime:
    return datetime.now(UTC)


def test_a_signed_assertion_names_its_client_and_hospital(
    clients: Clients, police: EhrClient
) -> None:
    checked = verify_assertion(clients, police.assertion(TOKEN_URL), token_url=TOKEN_URL, now=now())
    assert checked.client.client_id == police.client_id
    assert checked.client.hospital_id == "police-hospital"
    assert checked.jti


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://elsewhere.example/token"},
        {"exp": int(time.time()) - 120},
        {"exp": int(time.time()) + 3600},  # longer than five minutes
        {"sub": "someone-else"},
    ],
    ids=["audience", "expired", "too-long", "subject"],
)
def test_a_wrong_assertion_is_refused(
    clients, police: EhrClient, claims: dict[str, object]
) -> None:
    with pytest.raises(AuthError) as error:
        verify_assertion(
            clients, police.assertion(TOKEN_URL, **claims), token_url=TOKEN_URL, now=now()
        )
    assert error.value.error == "invalid_client"


def test_one_hospitals_key_cannot_sign_for_another(
    clients: Clients,
    police: EhrClient,
    severance: EhrClient,
) -> None:
    # Severance's key, police-hospital's client id and kid: the signature does not verify.
    forged = EhrClient(police.client_id, police.hospital, police.kid, severance.private_key)
    with pytest.raises(AuthError):
        verify_assertion(clients, forged.assertion(TOKEN_URL), token_url=TOKEN_URL, now=now())
    stranger = EhrClient.new("police-hospital")
    with pytest.raises(AuthError):
        verify_assertion(clients, stranger.assertion(TOKEN_URL), token_url=TOKEN_URL, now=now())
    with pytest.raises(AuthError):
        verify_assertion(clients, "not a jwt", token_url=TOKEN_URL, now=now())


def test_scopes() -> None:
    assert rights("system/Task.read system/Task.write") == {("Task", "read"), ("Task", "write")}
    assert rights("system/Task.rs") == {("Task", "read")}
    assert rights("system/*.cruds") == {
        ("Task", "read"),
        ("Task", "write"),
        ("Subscription", "read"),
        ("Subscription", "write"),
    }
    assert rights("patient/Task.read user/*.* openid") == frozenset()


def test_a_token_gets_only_what_was_asked_and_allowed(clients: Clients, police: EhrClient) -> None:
    client = clients.get(police.client_id)
    assert client is not None
    assert grant(client, "system/Task.read") == {("Task", "read")}
    with pytest.raises(AuthError) as error:
        grant(client, "system/Observation.read")
    assert error.value.error == "invalid_scope"


def test_the_clients_file_is_checked(tmp_path: Path, police: EhrClient) -> None:
    unknown = EhrClient.new("no-such-hospital")
    with pytest.raises(ConfigError) as error:
        load_clients(write_clients_file(tmp_path / "c.yaml", [police, unknown]), load_registry())
    assert error.value.fields == ("clients.1.hospital",)
    private = {**police.entry(), "jwks": {"keys": [{**police.jwk(), "d": "secret"}]}}
    (tmp_path / "p.yaml").write_text(f"version: 1\nclients: [{private}]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_clients(tmp_path / "p.yaml", load_registry())
    assert error.value.fields[0].startswith("clients.0.jwks")
    assert "private" in str(error.value)


def test_the_shipped_clients_file_loads() -> None:
    assert len(load_clients(None, load_registry())) == 0
