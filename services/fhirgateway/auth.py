"""Who may call the gateway: OAuth 2.0 client credentials, SMART Backend Services style.

Each hospital's EHR is a client in the clients file (`deploy/config/fhir-clients.yaml`,
`CARELINK_FHIR_CLIENTS_FILE`): its `client_id`, the registered hospital it acts for,
its public keys (a JWKS) and the scopes it may have. It asks `[base]/auth/token` for an
access token with a `private_key_jwt` client assertion (RFC 7523): a JWT it signs with
its private key, `iss` = `sub` = its client id, `aud` = the token endpoint's URL, a
unique `jti`, expiring within five minutes. The gateway keeps no client secret at all.

The access token is opaque (random, stored as a SHA-256 hash with its hospital, scopes
and expiry): the hospital is the token's, never a parameter a caller sends, so one
hospital's token can neither create nor read another hospital's Tasks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from contracts.hospital_v1 import HOSPITAL_ID_PATTERN
from services.lib.policy import Registry
from services.lib.policy.policy import ConfigError, load_yaml_mapping, validate_config

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# SMART Backend Services requires RS384 and ES384 support; nothing weaker is accepted.
ALGORITHMS = ("RS384", "ES384")
MAX_ASSERTION_LIFETIME = timedelta(minutes=5)
_WHAT = "FHIR clients file"
DEFAULT_CLIENTS_FILE = (
    Path(__file__).resolve().parents[2] / "deploy" / "config" / "fhir-clients.yaml"
)

# What a token may open: (resource type, read|write).
Right = tuple[str, str]
RESOURCES = ("Task", "Subscription")
_SCOPE = re.compile(r"^system/(?P<type>Task|Subscription|\*)\.(?P<perm>read|write|\*|[cruds]+)$")


def rights(scope: str) -> frozenset[Right]:
    """The rights a space-separated SMART scope string names (v1 `read`/`write`/`*` and
    v2 `cruds` letters); scopes the gateway does not know give none."""
    found: set[Right] = set()
    for item in scope.split():
        match = _SCOPE.match(item)
        if match is None:
            continue
        types = RESOURCES if match["type"] == "*" else (match["type"],)
        perm = match["perm"]
        # v1 names whole words; v2 letters (c, r, u, d, s) in that order.
        letters = set(
            "rs"
            if perm == "read"
            else "cud"
            if perm == "write"
            else "cruds"
            if perm == "*"
            else perm
        )
        perms: set[str] = set()
        if letters & {"r", "s"}:
            perms.add("read")
        if letters & {"c", "u", "d"}:
            perms.add("write")
        found |= {(t, p) for t in types for p in perms}
    return frozenset(found)


def scope_text(granted: frozenset[Right]) -> str:
    return " ".join(f"system/{t}.{p}" for t, p in sorted(granted))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClientEntry(_Frozen):
    client_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{3,100}$")
    hospital: str = Field(pattern=HOSPITAL_ID_PATTERN)
    # The client's public keys as a JWKS ({"keys": [...]}); each key needs a `kid`.
    jwks: dict[str, Any]
    scope: str = (
        "system/Task.read system/Task.write system/Subscription.read system/Subscription.write"
    )

    @field_validator("jwks")
    @classmethod
    def _keys_load(cls, value: dict[str, Any]) -> dict[str, Any]:
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError("a JWKS with at least one key is required")
        for index, key in enumerate(keys):
            if not isinstance(key, dict) or not key.get("kid"):
                raise ValueError(f"keys.{index}: every key needs a kid")
            if "d" in key:
                raise ValueError(f"keys.{index}: a private key; register the public key only")
            try:
                jwt.PyJWK(key)
            except jwt.PyJWTError as exc:
                raise ValueError(f"keys.{index}: not a usable key ({exc})") from None
        return value


class ClientsFile(_Frozen):
    version: int = 1
    clients: tuple[ClientEntry, ...] = ()


@dataclass(frozen=True)
class Client:
    client_id: str
    hospital_id: str
    keys: Mapping[str, jwt.PyJWK]
    allowed: frozenset[Right]


class Clients:
    def __init__(self, clients: Mapping[str, Client]) -> None:
        self._clients = dict(clients)

    def get(self, client_id: str) -> Client | None:
        return self._clients.get(client_id)

    def __len__(self) -> int:
        return len(self._clients)

    @property
    def hospital_ids(self) -> frozenset[str]:
        return frozenset(c.hospital_id for c in self._clients.values())


def load_clients(path: Path | None, registry: Registry) -> Clients:
    """Load the clients file; a malformed one, or one naming an unregistered hospital,
    raises ConfigError naming the file and the field (the service exits 2)."""
    file = path or DEFAULT_CLIENTS_FILE
    data = load_yaml_mapping(file, what=_WHAT)
    parsed = validate_config(ClientsFile, data, file, what=_WHAT)
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    clients: dict[str, Client] = {}
    for index, entry in enumerate(parsed.clients):
        if not registry.is_registered(entry.hospital):
            problems.append(
                (f"clients.{index}.hospital", f"{entry.hospital!r} is not in the registry")
            )
        if entry.client_id in seen:
            problems.append((f"clients.{index}.client_id", f"{entry.client_id!r} is listed twice"))
        seen.add(entry.client_id)
        keys = {key["kid"]: jwt.PyJWK(key) for key in entry.jwks["keys"]}
        clients[entry.client_id] = Client(
            entry.client_id, entry.hospital, keys, rights(entry.scope)
        )
    if problems:
        raise ConfigError(file, problems, what=_WHAT)
    return Clients(clients)


class AuthError(Exception):
    """An OAuth 2.0 error response (RFC 6749 §5.2): `error` and a description."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")


@dataclass(frozen=True)
class Assertion:
    client: Client
    jti: str
    expires_at: datetime


def verify_assertion(
    clients: Clients, assertion: str, *, token_url: str, now: datetime
) -> Assertion:
    """Check a client assertion: known client, its key (by `kid`), RS384/ES384, `iss` =
    `sub` = the client, `aud` the token endpoint, not expired, at most five minutes
    long, with a `jti`. The caller then makes sure the `jti` was never used before."""
    try:
        header = jwt.get_unverified_header(assertion)
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("invalid_client", "the client assertion is not a JWT") from None
    client_id = unverified.get("iss")
    client = clients.get(client_id) if isinstance(client_id, str) else None
    if client is None:
        raise AuthError("invalid_client", "unknown client", 401)
    key = client.keys.get(header.get("kid", ""))
    if key is None:
        raise AuthError("invalid_client", "no registered key has this kid", 401)
    try:
        claims = jwt.decode(
            assertion,
            key=key,
            algorithms=list(ALGORITHMS),
            audience=token_url,
            issuer=client.client_id,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
            leeway=30,
        )
    except jwt.PyJWTError as exc:
        raise AuthError("invalid_client", f"the client assertion was refused: {exc}", 401) from None
    if claims["sub"] != client.client_id:
        raise AuthError("invalid_client", "sub must equal iss (the client id)", 401)
    expires_at = datetime.fromtimestamp(claims["exp"], UTC)
    if expires_at - now > MAX_ASSERTION_LIFETIME:
        raise AuthError("invalid_client", "the assertion must expire within five minutes", 401)
    return Assertion(client, str(claims["jti"]), expires_at)


def grant(client: Client, requested: str) -> frozenset[Right]:
    """The rights a token gets: those asked for that the client may have."""
    granted = rights(requested) & client.allowed
    if not granted:
        raise AuthError("invalid_scope", "none of the requested scopes is allowed for this client")
    return granted


@dataclass(frozen=True)
class Caller:
    """A hospital's call, as its access token says."""

    client_id: str
    hospital_id: str
    rights: frozenset[Right]

    def may(self, resource: str, perm: str) -> bool:
        return (resource, perm) in self.rights
