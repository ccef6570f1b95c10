"""The faults, applied to a running `LocalSystem`: crashes, extra instances, a frozen
broker, PostgreSQL restarted or one database shut off, a paused consumer.

Every fault is recorded with its time and target as it happens, and every one
that suspends something (SIGSTOP, a database closed to connections) is undone
in `Faults.restore()`, which the harness always calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from services.tools.stack.system import LocalSystem, ServiceProcess


@dataclass(frozen=True)
class FaultEvent:
    at_s: float  # seconds since the scenario started
    action: str
    target: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at_s, 1),
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
        }


@dataclass
class Instance:
    """One running process of a service: the system's own or an extra one."""

    label: str  # e.g. "intake" or "intake#2"
    process: ServiceProcess
    ready_url: str


@dataclass
class Faults:
    system: LocalSystem
    started: float = field(default_factory=time.monotonic)
    events: list[FaultEvent] = field(default_factory=list)
    extra: list[Instance] = field(default_factory=list)
    # What restore() must undo.
    _stopped_pids: set[int] = field(default_factory=set)
    _closed_databases: set[str] = field(default_factory=set)
    _broker_frozen: bool = False

    # -- bookkeeping ------------------------------------------------------------------

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def record(self, action: str, target: str, detail: str = "") -> None:
        self.events.append(FaultEvent(self.elapsed, action, target, detail))

    @property
    def injected(self) -> int:
        """Faults proper (not the restarts and resumptions that end them)."""
        return sum(1 for e in self.events if e.action in FAULT_ACTIONS)

    async def sleep_until(self, at_s: float, stop: asyncio.Event) -> bool:
        """Sleep until `at_s` into the scenario; False if `stop` came first."""
        delay = at_s - self.elapsed
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        return not stop.is_set()

    # -- service processes --------------------------------------------------------------

    def instance(self, service: str) -> Instance:
        if self.system.info is None:
            raise RuntimeError("the system under test is not started")
        return Instance(service, self.system.services[service], self.system.info.health[service])

    def instances(self, service: str) -> list[Instance]:
        return [self.instance(service)] + [
            i for i in self.extra if i.process.name == service and i.process.running()
        ]

    async def start_extra(self, service: str, index: int = 2) -> Instance:
        """A second process of `service`: same environment (database, group, broker),
        its own health port and log file."""
        original = self.system.services[service]
        port = _free_port()
        log_path = original.log_path.with_name(f"{service}-{index}.log")
        env = {
            **original.env,
            "CARELINK_HEALTH_PORT": str(port),
            "CARELINK_LOG_FILE": str(log_path),
        }
        extra = Instance(
            f"{service}#{index}",
            ServiceProcess(service, env, log_path),
            f"http://127.0.0.1:{port}/health/ready",
        )
        extra.process.start()
        self.extra.append(extra)
        self.record("start-instance", extra.label, f"pid {extra.process.pid}, port {port}")
        await wait_ready(extra, timeout=90)
        return extra

    async def kill(self, instance: Instance) -> None:
        pid = instance.process.pid
        await asyncio.to_thread(instance.process.kill)
        self.record("SIGKILL", instance.label, f"pid {pid}")

    async def restart(self, instance: Instance, *, timeout: float = 90) -> None:
        await asyncio.to_thread(instance.process.start)
        self.record("restart", instance.label, f"pid {instance.process.pid}")
        await wait_ready(instance, timeout=timeout)

    def pause(self, instance: Instance) -> None:
        pid = _pid(instance)
        os.kill(pid, signal.SIGSTOP)
        self._stopped_pids.add(pid)
        self.record("SIGSTOP", instance.label, f"pid {pid}")

    def resume(self, instance: Instance) -> None:
        pid = _pid(instance)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        self._stopped_pids.discard(pid)
        self.record("SIGCONT", instance.label, f"pid {pid}")

    # -- infrastructure -----------------------------------------------------------------

    def _infra(self) -> Any:
        if self.system.infra is None:
            raise RuntimeError("the system has no infrastructure")
        return self.system.infra

    async def freeze_broker(self) -> None:
        infra = self._infra()
        pid = infra.broker_pid
        infra.freeze_broker()
        self._broker_frozen = True
        self.record("SIGSTOP", "broker", f"pid {pid}")

    async def thaw_broker(self) -> None:
        infra = self._infra()
        infra.thaw_broker()
        self._broker_frozen = False
        self.record("SIGCONT", "broker", f"pid {infra.broker_pid}")

    async def restart_postgres(self) -> None:
        infra = self._infra()
        before = infra.postgres_pid
        began = time.monotonic()
        await asyncio.to_thread(infra.restart_postgres)
        self.record(
            "restart-postgres",
            "postgres",
            f"pid {before} -> {infra.postgres_pid}, down {time.monotonic() - began:.1f}s",
        )

    async def close_database(self, service: str) -> None:
        """Nobody may connect to the service's database; its open sessions are ended."""
        admin, name = self._database(service)
        conn = await asyncpg.connect(admin, timeout=15, command_timeout=30)
        try:
            await conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            self._closed_databases.add(service)
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await conn.close()
        self.record("database-closed", service, f"{name}: {ended} sessions ended")

    async def open_database(self, service: str) -> None:
        admin, name = self._database(service)
        conn = await asyncpg.connect(admin, timeout=15, command_timeout=30)
        try:
            await conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        finally:
            await conn.close()
        self._closed_databases.discard(service)
        self.record("database-opened", service, name)

    def _database(self, service: str) -> tuple[str, str]:
        info = self.system.info
        if info is None:
            raise RuntimeError("the system under test is not started")
        name = urlsplit(info.databases[service]).path.lstrip("/")
        if not name.replace("_", "").isalnum():
            raise ValueError(f"unexpected database name {name!r}")
        return info.postgres_admin_url, name

    # -- undo ----------------------------------------------------------------------------

    async def restore(self) -> list[str]:
        """Undo whatever is still suspended; returns what had to be undone."""
        undone: list[str] = []
        if self._broker_frozen:
            with contextlib.suppress(Exception):
                await self.thaw_broker()
                undone.append("broker thawed")
        for pid in list(self._stopped_pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
            self._stopped_pids.discard(pid)
            undone.append(f"pid {pid} continued")
        for service in list(self._closed_databases):
            for _ in range(10):
                try:
                    await self.open_database(service)
                    undone.append(f"{service} database opened")
                    break
                except (OSError, asyncpg.PostgresError):
                    await asyncio.sleep(1)
        return undone

    def stop_extra(self) -> None:
        for extra in self.extra:
            if extra.process.running():
                with contextlib.suppress(Exception):
                    extra.process.stop(timeout=15)


# Faults proper; starting an extra instance, restarts and resumptions are not counted.
FAULT_ACTIONS = frozenset({"SIGKILL", "SIGSTOP", "restart-postgres", "database-closed"})


def _pid(instance: Instance) -> int:
    pid = instance.process.pid
    if pid is None or not instance.process.running():
        raise RuntimeError(f"{instance.label} is not running")
    return pid


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback only)
            return bool(response.status == 200)
    except OSError:
        return False


async def wait_ready(instance: Instance, *, timeout: float) -> None:
    """Until the instance answers ready; raises if it exits or the bound passes."""
    deadline = time.monotonic() + timeout
    while True:
        if not instance.process.running():
            raise RuntimeError(
                f"{instance.label} exited while starting; see {instance.process.log_path}"
                f" and {Path(instance.process.log_path).with_suffix('.stderr')}"
            )
        if await asyncio.to_thread(ready, instance.ready_url):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance.label} not ready after {timeout:.0f}s")
        await asyncio.sleep(0.3)
