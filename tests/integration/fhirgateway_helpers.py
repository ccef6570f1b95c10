"""The FHIR gateway as a process of its own (`python -m services.fhirgateway`) on the
tests' broker and PostgreSQL, with an EHR client per served hospital, and a loopback
HTTP receiver for subscription notifications."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import Response

from contracts.topics import all_topics
from services.lib.runtime.kafka import ensure_topics
from services.lib.runtime.settings import REPO_ROOT, KafkaSettings
from services.tools.localinfra import Endpoints, ensure_databases
from services.tools.stack.system import EMBEDDED_KAFKA_ENV, ServiceProcess
from tests.fhir_clients import EhrClient, write_clients_file
from tests.integration.runtime_helpers import wait_until


@dataclass
class RunningGateway:
    url: str  # the FHIR base, http://127.0.0.1:<port>/fhir
    database_url: str
    clients: dict[str, EhrClient]  # by hospital id
    process: ServiceProcess

    @property
    def token_url(self) -> str:
        return f"{self.url}/auth/token"

    async def token(self, hospital_id: str, scope: str | None = None) -> str:
        client = self.clients[hospital_id]
        form = client.token_form(self.token_url, **({"scope": scope} if scope else {}))
        async with httpx.AsyncClient(timeout=20) as http:
            answer = await http.post(self.token_url, data=form)
        assert answer.status_code == 200, answer.text
        token: str = answer.json()["access_token"]
        return token

    async def client(self, hospital_id: str) -> httpx.AsyncClient:
        token = await self.token(
            hospital_id,
            "system/Task.read system/Task.write system/Subscription.read system/Subscription.write",
        )
        return httpx.AsyncClient(
            base_url=self.url,
            timeout=20,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_gateway(
    endpoints: Endpoints,
    base: Path,
    hospitals: list[str],
    *,
    registry_file: Path | None = None,
    database_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> RunningGateway:
    """Start the gateway serving `hospitals`. Without a registry file, the hospitals are
    added to a copy of the shipped registry (fresh ids: their topics are their own)."""
    tag = uuid.uuid4().hex[:8]
    base.mkdir(parents=True, exist_ok=True)
    if registry_file is None:
        registry: dict[str, Any] = yaml.safe_load(
            (REPO_ROOT / "deploy" / "config" / "registry.yaml").read_text(encoding="utf-8")
        )
        for hospital_id in hospitals:
            registry["hospitals"].append(
                {
                    "id": hospital_id,
                    "name": {"ko": "시험병원", "en": "Test"},
                    "district": "Songpa-gu",
                }
            )
        registry_file = base / "registry.yaml"
        registry_file.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
        kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap)
        asyncio.run(ensure_topics(kafka, all_topics(hospitals)))
    clients = {h: EhrClient.new(h) for h in hospitals}
    clients_file = write_clients_file(base / "fhir-clients.yaml", list(clients.values()))
    if database_url is None:
        name = f"it_fhirgateway_{tag}"
        database_url = asyncio.run(ensure_databases(endpoints.postgres_url, [name]))[name]
    port = free_port()
    env = {
        **os.environ,
        "CARELINK_DATABASE_URL": database_url,
        "CARELINK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        **(EMBEDDED_KAFKA_ENV if endpoints.kind == "embedded" else {}),
        "CARELINK_HEALTH_PORT": str(port),
        "CARELINK_REGISTRY_FILE": str(registry_file),
        "CARELINK_FHIR_CLIENTS_FILE": str(clients_file),
        "CARELINK_FHIR_ALLOW_HTTP_ENDPOINTS": "true",
        "CARELINK_NOTIFY_BASE_DELAY_S": "0.2",
        "CARELINK_NOTIFY_POLL_INTERVAL_S": "0.2",
        "CARELINK_GROUP_PREFIX": f"it-{tag}-",
        "CARELINK_LOG_FILE": str(base / "fhirgateway.log"),
        "CARELINK_LOG_FORMAT": "json",
        "CARELINK_OUTBOX_POLL_INTERVAL_S": "0.5",
        "PYTHONPATH": str(REPO_ROOT),
        **(extra_env or {}),
    }
    process = ServiceProcess("fhirgateway", env, base / "fhirgateway.log")
    process.start()
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if not process.running():
            stderr = (base / "fhirgateway.stderr").read_text(errors="replace")
            raise RuntimeError(f"the FHIR gateway exited while starting:\n{stderr[-3000:]}")
        try:
            with urllib.request.urlopen(f"{root}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the FHIR gateway was not ready within 60 s")
        time.sleep(0.2)
    return RunningGateway(f"{root}/fhir", database_url, clients, process)


@dataclass
class Receiver:
    """A loopback HTTP endpoint that keeps what it is sent; answers `status` (settable)."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    attempts: int = 0


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}/notify")
    app = FastAPI()

    @app.post("/notify")
    async def notify(request: Request) -> Any:
        state.attempts += 1
        if state.status >= 300:
            return Response(status_code=state.status)
        state.received.append(await request.json())
        return {}

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: _true(server.started), timeout=10, what="the receiver started")
    try:
        yield state
    finally:
        server.should_exit = True
        await task


async def _true(value: bool) -> bool:
    return value
