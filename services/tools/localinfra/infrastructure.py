"""What every kind of local infrastructure hands to its user."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self


class InfrastructureError(RuntimeError):
    """The broker or the database could not be provided."""


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str  # "host:port[,host:port...]"
    postgres_url: str  # superuser URL on database "postgres"
    kind: str  # "explicit" | "containers" | "embedded"
    log_dir: Path | None  # where the servers' logs are; None when we started nothing


class Infrastructure:
    """A running broker + PostgreSQL; stop() releases what this object started."""

    def __init__(self, endpoints: Endpoints) -> None:
        self.endpoints = endpoints

    def stop(self) -> None:
        """Stop what was started. Safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def problems(self) -> list[str]:
        """Servers of ours that died since start; empty when all is well."""
        return []

    # Fault injection needs processes of our own; other kinds say so instead of
    # silently doing nothing, so a fault test cannot pass without its fault.
    @property
    def broker_pid(self) -> int | None:
        return None

    @property
    def postgres_pid(self) -> int | None:
        return None

    def freeze_broker(self) -> None:
        raise NotImplementedError(self._needs_embedded("freeze_broker"))

    def thaw_broker(self) -> None:
        raise NotImplementedError(self._needs_embedded("thaw_broker"))

    def restart_postgres(self) -> None:
        raise NotImplementedError(self._needs_embedded("restart_postgres"))

    def _needs_embedded(self, what: str) -> str:
        return (
            f"{what}() needs the embedded servers (CARELINK_LOCALINFRA=embedded); "
            f"this infrastructure is {self.endpoints.kind!r}"
        )

    def __repr__(self) -> str:
        e = self.endpoints
        return f"<{type(self).__name__} kafka={e.kafka_bootstrap} postgres={e.postgres_url}>"


class ExplicitInfrastructure(Infrastructure):
    """Servers somebody else runs: nothing to start, nothing to stop."""
