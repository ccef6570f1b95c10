"""A local EHR client for the FHIR gateway, so `make run` can be tried by hand.

`make run` makes one client for police-hospital: an EC P-384 key pair whose private
key stays in the run directory (`fhir-client-key.pem`, owner only) and whose public
key goes into the clients file the local gateway reads (`fhir-clients.yaml`).

    python -m services.tools.stack.fhirclient [--system .local/run/system.json]

prints an access token for it (SMART Backend Services: a signed client assertion
exchanged at the gateway's token endpoint), for curl:

    TOKEN=$(.venv/bin/python -m services.tools.stack.fhirclient)
    curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8191/fhir/Task
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from services.lib.runtime.settings import REPO_ROOT

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SCOPE = "system/Task.read system/Task.write system/Subscription.read system/Subscription.write"
LOCAL_HOSPITAL = "police-hospital"


@dataclass(frozen=True)
class LocalClient:
    client_id: str
    hospital: str
    kid: str
    key_file: Path
    clients_file: Path


def write_local_client(directory: Path, hospital: str = LOCAL_HOSPITAL) -> LocalClient:
    """A fresh key pair and the clients file naming its public key."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    key_file = directory / "fhir-client-key.pem"
    key_file.touch(mode=0o600, exist_ok=True)
    key_file.chmod(0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    client = LocalClient(
        f"{hospital}-ehr-local", hospital, "local", key_file, directory / "fhir-clients.yaml"
    )
    public = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    entry = {
        "client_id": client.client_id,
        "hospital": hospital,
        "jwks": {"keys": [{**public, "kid": client.kid, "alg": "ES384", "use": "sig"}]},
    }
    client.clients_file.write_text(
        "# Written by make run: the local EHR client (private key beside it).\n"
        + yaml.safe_dump({"version": 1, "clients": [entry]}),
        encoding="utf-8",
    )
    return client


def access_token(base_url: str, client_id: str, kid: str, key_file: Path) -> str:
    """An access token from the gateway's token endpoint for this client."""
    token_url = f"{base_url}/auth/token"
    now = int(time.time())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
        },
        key,  # type: ignore[arg-type]
        algorithm="ES384",
        headers={"kid": kid},
    )
    answer = httpx.post(
        token_url,
        data={
            "grant_type": "client_credentials",
            "scope": SCOPE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
        timeout=10,
    )
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.tools.stack.fhirclient",
        description="Print an access token of make run's local EHR client (police-hospital).",
    )
    parser.add_argument(
        "--system",
        type=Path,
        default=REPO_ROOT / ".local" / "run" / "system.json",
        help="the running system's system.json (default: .local/run/system.json)",
    )
    args = parser.parse_args(argv)
    try:
        info = json.loads(args.system.read_text(encoding="utf-8"))
        client = info["fhir_client"]
        print(
            access_token(info["fhir"], client["client_id"], client["kid"], Path(client["key_file"]))
        )
    except (OSError, KeyError, ValueError, httpx.HTTPError) as exc:
        print(f"no token: {exc} (is make run running?)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
