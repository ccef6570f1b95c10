"""Apache Kafka (KRaft) and PostgreSQL in Docker through testcontainers.

Only used where a Docker engine answers; the machines this project is built on
have none, so this path is exercised on developers' laptops and CI with Docker.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from services.tools.localinfra.infrastructure import Endpoints, Infrastructure, InfrastructureError
from services.tools.localinfra.postgres import probe_postgres
from services.tools.localinfra.processes import run_blocking, wait_ready
from services.tools.localinfra.tansu import probe_kafka

log = logging.getLogger(__name__)

# cp-kafka 7.9 is Apache Kafka 3.9; testcontainers' KafkaContainer knows how to
# advertise the host-mapped port with it, which a generic apache/kafka container
# cannot learn before it starts.
KAFKA_IMAGE = os.environ.get("CARELINK_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")
POSTGRES_IMAGE = os.environ.get("CARELINK_POSTGRES_IMAGE", "postgres:17")


def docker_available(timeout: float = 2.0) -> bool:
    """Whether a Docker engine answers a ping within timeout; never raises."""
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, no permission, wrong API version: all mean "no"
        return False


def _container_classes() -> tuple[Any, Any]:
    # testcontainers 4.x moved modules to testcontainers.community.* and left
    # deprecated shims at the old paths; accept either layout.
    try:
        from testcontainers.community.kafka import KafkaContainer
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:
        try:
            from testcontainers.kafka import KafkaContainer
            from testcontainers.postgres import PostgresContainer
        except ImportError as exc:
            raise InfrastructureError(
                "Docker infrastructure needs testcontainers[kafka,postgres]: "
                "pip install 'carelink[local]'"
            ) from exc
    return KafkaContainer, PostgresContainer


class ContainerInfrastructure(Infrastructure):
    def __init__(self, endpoints: Endpoints, kafka: Any, postgres: Any) -> None:
        super().__init__(endpoints)
        self._kafka = kafka
        self._postgres = postgres
        self._stopped = False

    @classmethod
    def start(
        cls, instance_dir: Path, *, postgres_fsync: bool = False, ready_timeout: float = 180.0
    ) -> ContainerInfrastructure:
        kafka_cls, postgres_cls = _container_classes()
        # Docker publishes ports on every interface; a random password keeps the
        # database from being an open door on shared networks.
        password = secrets.token_urlsafe(16)
        postgres = postgres_cls(
            POSTGRES_IMAGE, username="postgres", password=password, dbname="postgres", driver=None
        ).with_command(
            [
                "postgres",
                "-c",
                "max_connections=300",
                "-c",
                f"fsync={'on' if postgres_fsync else 'off'}",
            ]
        )
        kafka = (
            kafka_cls(KAFKA_IMAGE)
            .with_kraft()
            # Tests use 2000 ms sessions for fast joins; Kafka's floor is 6000 by default.
            .with_env("KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS", "1000")
            # A single broker cannot hold the default three replicas of these logs.
            .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
        )
        started: list[tuple[str, Any]] = []
        try:
            postgres.start()
            started.append(("postgres", postgres))
            kafka.start(timeout=int(ready_timeout))
            started.append(("kafka", kafka))
            endpoints = Endpoints(
                kafka_bootstrap=kafka.get_bootstrap_server(),
                postgres_url=postgres.get_connection_url(driver=None),
                kind="containers",
                log_dir=instance_dir,
            )
            run_blocking(lambda: _wait_both(endpoints, within=60.0))
        except BaseException:
            for name, container in reversed(started):
                _stop_quietly(name, container, instance_dir)
            raise
        log.info("containers ready: kafka=%s", endpoints.kafka_bootstrap)
        infra = cls(endpoints, kafka, postgres)
        # Ryuk removes them when we die; this removes them on a normal exit too.
        atexit.register(infra.stop)
        return infra

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        _stop_quietly("kafka", self._kafka, self.endpoints.log_dir)
        _stop_quietly("postgres", self._postgres, self.endpoints.log_dir)


async def _wait_both(endpoints: Endpoints, *, within: float) -> None:
    await wait_ready(
        lambda: probe_kafka(endpoints.kafka_bootstrap), what="Kafka container", within=within
    )
    await wait_ready(
        lambda: probe_postgres(endpoints.postgres_url), what="PostgreSQL container", within=within
    )


def _stop_quietly(name: str, container: Any, log_dir: Path | None) -> None:
    """Keep the container's log where the embedded servers keep theirs, then remove it."""
    try:
        if log_dir is not None:
            out, err = container.get_logs()
            (log_dir / f"{name}.log").write_bytes(out + err)
    except Exception:  # the log is a courtesy; removal below is what matters
        log.debug("could not save %s container log", name, exc_info=True)
    try:
        container.stop()
    except Exception:  # Ryuk removes it when this process ends anyway
        log.warning("could not stop %s container", name, exc_info=True)
