"""SMART Backend Services clients for the gateway's tests: a key pair per client, the
clients file holding the public keys, and signed client assertions."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from services.fhirgateway.auth import ASSERTION_TYPE


@dataclass(frozen=True)
class EhrClient:
    client_id: str
    hospital: str
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def new(cls, hospital: str) -> EhrClient:
        return cls(
            f"{hospital}-ehr",
            hospital,
            f"kid-{uuid.uuid4().hex[:8]}",
            ec.generate_private_key(ec.SECP384R1()),
        )

    def jwk(self) -> dict[str, Any]:
        key: dict[str, Any] = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**key, "kid": self.kid, "alg": "ES384", "use": "sig"}

    def entry(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "hospital": self.hospital,
            "jwks": {"keys": [self.jwk()]},
        }

    def assertion(self, token_url: str, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + 240,
            "iat": now,
            "jti": str(uuid.uuid4()),
            **claims,
        }
        return jwt.encode(body, self.private_key, algorithm="ES384", headers={"kid": self.kid})

    def token_form(
        self, token_url: str, scope: str = "system/Task.read system/Task.write", **claims: Any
    ) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(token_url, **claims),
        }


def write_clients_file(path: Path, clients: list[EhrClient]) -> Path:
    path.write_text(
        yaml.safe_dump({"version": 1, "clients": [c.entry() for c in clients]}), encoding="utf-8"
    )
    return path
