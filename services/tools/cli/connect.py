"""Where the system is: `system.json` from `make run`, overridden by environment variables.

Precedence, highest first: `CARELINK_KAFKA_BOOTSTRAP`, `CARELINK_<SERVICE>_DATABASE_URL` and
`CARELINK_<SERVICE>_HEALTH_URL`; then the file named by `--system`; then
`.local/run/system.json` in the current directory or the repository.
The other `CARELINK_KAFKA_*` settings (SASL, TLS) apply as they do for the services.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.lib.runtime.kafka import client_options
from services.lib.runtime.settings import REPO_ROOT, KafkaSettings
from services.tools.stack.deployables import SERVICES

SYSTEM_FILE = Path(".local") / "run" / "system.json"
HINT = "is `make run` running? (or pass --system FILE, or set CARELINK_KAFKA_BOOTSTRAP)"


class ConnectError(RuntimeError):
    """The system cannot be found or reached; the message says what to do."""


@dataclass(frozen=True)
class System:
    kafka_bootstrap: str
    databases: dict[str, str] = field(default_factory=dict)
    health: dict[str, str] = field(default_factory=dict)
    # Where the figures came from, for error messages.
    source: str = "environment"
    # `embedded` means the local Tansu broker, whose end offsets are approximate.
    infrastructure: str | None = None

    def kafka_options(self) -> dict[str, Any]:
        """aiokafka connection options: this bootstrap, security from CARELINK_KAFKA_*."""
        if not self.kafka_bootstrap:
            raise ConnectError(f"no Kafka bootstrap address in {self.source}; {HINT}")
        return client_options(KafkaSettings(bootstrap=self.kafka_bootstrap))

    def database(self, service: str) -> str:
        try:
            return self.databases[service]
        except KeyError:
            raise ConnectError(
                f"no database URL for {service} in {self.source} "
                f"(set CARELINK_{service.upper()}_DATABASE_URL); {HINT}"
            ) from None


def default_system_files() -> list[Path]:
    return [Path.cwd() / SYSTEM_FILE, REPO_ROOT / SYSTEM_FILE]


def load_system(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    candidates: list[Path] | None = None,
) -> System:
    """The system to talk to; raises ConnectError when there is nothing to go on."""
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    source = "environment"
    if path is not None:
        if not path.is_file():
            raise ConnectError(f"system file {path} does not exist; {HINT}")
        raw, source = _read(path), str(path)
    else:
        for candidate in default_system_files() if candidates is None else candidates:
            if candidate.is_file():
                raw, source = _read(candidate), str(candidate)
                break

    bootstrap = env.get("CARELINK_KAFKA_BOOTSTRAP") or str(raw.get("kafka_bootstrap") or "")
    databases = {str(k): str(v) for k, v in dict(raw.get("databases") or {}).items()}
    health = {str(k): str(v) for k, v in dict(raw.get("health") or {}).items()}
    for service in SERVICES:
        if url := env.get(f"CARELINK_{service.upper()}_DATABASE_URL"):
            databases[service] = url
        if url := env.get(f"CARELINK_{service.upper()}_HEALTH_URL"):
            health[service] = url
    if not (bootstrap or databases or health):
        where = str(path) if path else " or ".join(str(p) for p in default_system_files())
        raise ConnectError(f"cannot find the system: no {where}; {HINT}")
    # The file's infrastructure says nothing about a broker named by the environment.
    same_broker = bootstrap == raw.get("kafka_bootstrap")
    infrastructure = raw.get("infrastructure") if same_broker else None
    return System(
        kafka_bootstrap=bootstrap,
        databases=databases,
        health=health,
        source=source,
        infrastructure=str(infrastructure) if infrastructure else None,
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConnectError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConnectError(f"{path} is not a system description (expected a JSON object)")
    return data
