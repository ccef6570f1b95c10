"""Start and stop the four services, and the coordinators' console, as child processes
around the infrastructure."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from contracts.topics import all_topics
from services.lib.policy import load_providers, load_registry
from services.lib.runtime.kafka import ensure_topics
from services.lib.runtime.settings import REPO_ROOT, KafkaSettings
from services.tools.localinfra import Infrastructure, ensure_databases, start_infrastructure
from services.tools.stack.deployables import (
    CONSOLE,
    CONSOLE_PORT,
    FHIR_GATEWAY,
    FHIR_GATEWAY_PORT,
    HEALTH_PORTS,
    PORTAL,
    PORTAL_PORT,
    SERVICES,
)
from services.tools.stack.fhirclient import write_local_client

# The services whose HTTP APIs the console calls.
CONSOLE_CALLS = ("intake", "referral", "scheduling", "outcome")
# Tansu makes each consumer-group join wait half the session timeout: keep joins fast locally.
EMBEDDED_KAFKA_ENV = {
    "CARELINK_KAFKA_SESSION_TIMEOUT_MS": "2000",
    "CARELINK_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
}


@dataclass
class SystemInfo:
    """What `make run` prints and writes to `system.json` for tools to read."""

    infrastructure: str
    kafka_bootstrap: str
    postgres_admin_url: str
    databases: dict[str, str]
    health: dict[str, str]
    metrics: dict[str, str]
    logs: dict[str, str]
    infrastructure_logs: str | None
    hospitals: list[str] = field(default_factory=list)
    # The coordinators' console (pages and /api), e.g. http://127.0.0.1:8180.
    console: str = ""
    # The social workers' portal (pages, /api, /health), e.g. http://127.0.0.1:8190.
    portal: str = ""
    # The FHIR gateway's base URL, e.g. http://127.0.0.1:8191/fhir, and the local EHR
    # client made for it (client_id, kid, key_file; services/tools/stack/fhirclient.py).
    fhir: str = ""
    fhir_client: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class ServiceProcess:
    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Structured logs go to the log file; stderr catches crashes before logging is set up.
        stderr = open(self.log_path.with_suffix(".stderr"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", f"services.{self.name}"],
            env=self.env,
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        stderr.close()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if not self.running() or self.process is None:  # running() implies a process
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL, as a crash would: for fault tests."""
        if self.running() and self.process is not None:  # running() implies a process
            self.process.kill()
            self.process.wait(5)


class LocalSystem:
    """The system on loopback. `fixed_ports` uses the documented health ports
    (8181-8184) and the console's 8180 for people; tests take free ports so
    sessions do not collide. The console runs as `services["console"]`."""

    def __init__(
        self,
        base_dir: Path,
        *,
        fixed_ports: bool = False,
        infrastructure_kind: str | None = None,
        infrastructure: Infrastructure | None = None,
        name_prefix: str = "",
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.fixed_ports = fixed_ports
        self.kind = infrastructure_kind
        self.extra_env = dict(extra_env or {})
        # Infrastructure handed in belongs to the caller, who also stops it.
        self.infra: Infrastructure | None = infrastructure
        self._owns_infra = infrastructure is None
        # Databases and consumer groups carry the prefix, so test sessions sharing
        # explicit servers do not meet.
        self.prefix = name_prefix
        self.services: dict[str, ServiceProcess] = {}
        self.info: SystemInfo | None = None
        # The console's credential for the services' APIs: random per system, given to
        # both sides through their environment, never written to system.json.
        self.console_token = secrets.token_urlsafe(32)
        # The operators' credential for intake's PIPA destruction routes (`carelink
        # personal-data`): random per system, written to `operator-token` beside system.json.
        self.operator_token = secrets.token_urlsafe(32)
        # Every contracted provider's credential for referral's provider routes, likewise
        # random per system (`provider_tokens_file` writes them for people trying it).
        self.provider_tokens = {
            provider: secrets.token_urlsafe(32)
            for provider in sorted(load_providers(load_registry()).ids)
        }

    def start(self, *, ready_timeout: float = 90.0) -> SystemInfo:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self.infra is None:
            self.infra = start_infrastructure(self.base_dir / "infra", kind=self.kind)
        endpoints = self.infra.endpoints
        registry = load_registry()
        databases = asyncio.run(
            ensure_databases(
                endpoints.postgres_url, [self._db(s) for s in (*SERVICES, PORTAL, FHIR_GATEWAY)]
            )
        )
        kafka_env = {"CARELINK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap}
        if endpoints.kind == "embedded":
            kafka_env.update(EMBEDDED_KAFKA_ENV)
        asyncio.run(
            ensure_topics(
                KafkaSettings(bootstrap=endpoints.kafka_bootstrap),
                all_topics(registry.hospital_ids),
            )
        )
        logs_dir = self.base_dir / "logs"
        ports = {s: (HEALTH_PORTS[s] if self.fixed_ports else _free_port()) for s in SERVICES}
        callers = json.dumps({CONSOLE: self.console_token})
        provider_callers = json.dumps(self.provider_tokens)
        for name in SERVICES:
            env = {
                **os.environ,
                **kafka_env,
                "CARELINK_DATABASE_URL": databases[self._db(name)],
                # Who may call the service's API (the services the console calls read it).
                "CARELINK_API_CALLERS": (
                    json.dumps({**json.loads(callers), "operator": self.operator_token})
                    if name == "intake"
                    else callers
                ),
                # The providers' own credentials (only referral serves them routes).
                **({"CARELINK_PROVIDER_CALLERS": provider_callers} if name == "referral" else {}),
                "CARELINK_HEALTH_PORT": str(ports[name]),
                "CARELINK_LOG_FILE": str(logs_dir / f"{name}.log"),
                "CARELINK_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO_ROOT),
                "CARELINK_GROUP_PREFIX": self.prefix,
                **self.extra_env,
            }
            self.services[name] = ServiceProcess(name, env, logs_dir / f"{name}.log")
        console_port = CONSOLE_PORT if self.fixed_ports else _free_port()
        self.services[CONSOLE] = ServiceProcess(
            CONSOLE,
            {
                **os.environ,
                "CARELINK_CONSOLE_PORT": str(console_port),
                # A gateway: the services' APIs and its credential for them, no database.
                **{
                    f"CARELINK_CONSOLE_{name.upper()}_URL": f"http://127.0.0.1:{ports[name]}"
                    for name in CONSOLE_CALLS
                },
                "CARELINK_CONSOLE_API_TOKEN": self.console_token,
                # It follows care.escalations to push overdue work to leads (issue 10).
                **kafka_env,
                "CARELINK_CONSOLE_FOLLOW_ESCALATIONS": "true",
                "CARELINK_GROUP_PREFIX": self.prefix,
                # A local run: the demo accounts and a per-process key are allowed.
                "CARELINK_ENV": "local",
                "CARELINK_CONSOLE_LOG_FILE": str(logs_dir / f"{CONSOLE}.log"),
                "CARELINK_CONSOLE_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO_ROOT),
                **self.extra_env,
            },
            logs_dir / f"{CONSOLE}.log",
        )
        # The portal stands in for hospitals: its own database, the contract's topics of
        # the hospitals of its users file (demo accounts, allowed in a local run).
        portal_port = PORTAL_PORT if self.fixed_ports else _free_port()
        self.services[PORTAL] = ServiceProcess(
            PORTAL,
            {
                **os.environ,
                **kafka_env,
                "CARELINK_ENV": "local",
                "CARELINK_DATABASE_URL": databases[self._db(PORTAL)],
                "CARELINK_HEALTH_PORT": str(portal_port),
                "CARELINK_LOG_FILE": str(logs_dir / f"{PORTAL}.log"),
                "CARELINK_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO_ROOT),
                "CARELINK_GROUP_PREFIX": self.prefix,
                **self.extra_env,
            },
            logs_dir / f"{PORTAL}.log",
        )
        # The FHIR gateway (issue 14): its own database, one local EHR client (police-hospital)
        # whose private key stays in the run directory.
        fhir_port = FHIR_GATEWAY_PORT if self.fixed_ports else _free_port()
        fhir_client = write_local_client(self.base_dir)
        self.services[FHIR_GATEWAY] = ServiceProcess(
            FHIR_GATEWAY,
            {
                **os.environ,
                **kafka_env,
                "CARELINK_DATABASE_URL": databases[self._db(FHIR_GATEWAY)],
                "CARELINK_HEALTH_PORT": str(fhir_port),
                "CARELINK_FHIR_CLIENTS_FILE": str(fhir_client.clients_file),
                # Local subscriptions may notify an http endpoint on this machine.
                "CARELINK_FHIR_ALLOW_HTTP_ENDPOINTS": "true",
                "CARELINK_LOG_FILE": str(logs_dir / f"{FHIR_GATEWAY}.log"),
                "CARELINK_LOG_FORMAT": "json",
                "PYTHONPATH": str(REPO_ROOT),
                "CARELINK_GROUP_PREFIX": self.prefix,
                **self.extra_env,
            },
            logs_dir / f"{FHIR_GATEWAY}.log",
        )
        for process in self.services.values():
            process.start()
        self.info = SystemInfo(
            infrastructure=endpoints.kind,
            kafka_bootstrap=endpoints.kafka_bootstrap,
            postgres_admin_url=endpoints.postgres_url,
            databases={s: databases[self._db(s)] for s in SERVICES},
            health={s: f"http://127.0.0.1:{ports[s]}/health/ready" for s in SERVICES},
            metrics={s: f"http://127.0.0.1:{ports[s]}/metrics" for s in SERVICES},
            logs={s: str(logs_dir / f"{s}.log") for s in SERVICES},
            infrastructure_logs=str(endpoints.log_dir) if endpoints.log_dir else None,
            hospitals=sorted(registry.hospital_ids),
            console=f"http://127.0.0.1:{console_port}",
            portal=f"http://127.0.0.1:{portal_port}",
            fhir=f"http://127.0.0.1:{fhir_port}/fhir",
            fhir_client={
                "client_id": fhir_client.client_id,
                "kid": fhir_client.kid,
                "key_file": str(fhir_client.key_file),
            },
        )
        (self.base_dir / "system.json").write_text(self.info.to_json() + "\n")
        token_file = self.base_dir / "operator-token"
        token_file.touch(mode=0o600)
        token_file.chmod(0o600)
        token_file.write_text(self.operator_token + "\n")
        self.wait_ready(ready_timeout)
        return self.info

    def write_provider_tokens(self, path: Path) -> Path:
        """The providers' tokens for this run, readable by the owner only (to try the
        provider routes by hand)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(self.provider_tokens, indent=2) + "\n", encoding="utf-8")
        return path

    def _db(self, service: str) -> str:
        return f"{self.prefix}carelink_{service}".replace("-", "_")

    def wait_ready(self, timeout: float = 90.0) -> None:
        if self.info is None:
            raise RuntimeError("wait_ready() before start()")
        deadline = time.monotonic() + timeout
        pending = dict(self.info.health)
        if CONSOLE in self.services and self.info.console:
            pending[CONSOLE] = f"{self.info.console}/api/health"
        if PORTAL in self.services and self.info.portal:
            pending[PORTAL] = f"{self.info.portal}/health/ready"
        if FHIR_GATEWAY in self.services and self.info.fhir:
            pending[FHIR_GATEWAY] = f"{self.info.fhir.removesuffix('/fhir')}/health/ready"
        while pending:
            for name, url in list(pending.items()):
                process = self.services[name]
                if not process.running():
                    raise RuntimeError(
                        f"service {name} exited while starting; see {process.log_path} and "
                        f"{process.log_path.with_suffix('.stderr')}:\n{_tail(process.log_path)}"
                        f"{_tail(process.log_path.with_suffix('.stderr'))}"
                    )
                if _ready(url):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"services not ready after {timeout:.0f}s: {sorted(pending)}")
            time.sleep(0.2)

    def restart(self, name: str, *, kill: bool = False) -> None:
        process = self.services[name]
        process.kill() if kill else process.stop()
        process.start()
        self.wait_ready()

    def stop(self) -> None:
        # Signal all first so they shut down in parallel, then wait for each.
        for process in self.services.values():
            if process.process is not None and process.running():
                with contextlib.suppress(ProcessLookupError):
                    process.process.send_signal(signal.SIGTERM)
        for process in self.services.values():
            process.stop()
        if self.infra is not None and self._owns_infra:
            self.infra.stop()
            self.infra = None

    def __enter__(self) -> LocalSystem:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return bool(response.status == 200)
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
