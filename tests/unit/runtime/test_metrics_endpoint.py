"""/metrics without servers: readiness exported as carelink_ready at every scrape, and a
collector that fails or hangs never breaks the scrape."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from prometheus_client import REGISTRY

from services.lib.runtime.health import health_app
from services.lib.runtime.metrics import OUTBOX_BACKLOG


async def _get(app: Any, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def _ready(service: str, check: str) -> float | None:
    return REGISTRY.get_sample_value("carelink_ready", {"service": service, "check": check})


async def test_a_scrape_measures_readiness_per_check() -> None:
    service = f"probe-{uuid.uuid4().hex[:6]}"
    database_up = True

    async def broker() -> bool:
        return True

    async def database() -> bool:
        if not database_up:
            raise ConnectionResetError("gone")
        return True

    app = health_app(
        service=service, live=lambda: True, checks={"broker": broker, "database": database}
    )
    status, body = await _get(app, "/metrics")
    assert status == 200
    assert f'carelink_ready{{check="database",service="{service}"}} 1.0' in body.decode()

    database_up = False
    await _get(app, "/metrics")
    assert (_ready(service, "broker"), _ready(service, "database")) == (1.0, 0.0)
    # A readiness probe updates the gauge as well.
    database_up = True
    assert (await _get(app, "/health/ready"))[0] == 200
    assert _ready(service, "database") == 1.0


async def test_collectors_run_at_each_scrape_and_a_broken_one_does_not_break_it() -> None:
    service = f"probe-{uuid.uuid4().hex[:6]}"
    calls = 0

    async def sample() -> None:
        nonlocal calls
        calls += 1
        OUTBOX_BACKLOG.labels(service).set(calls * 10)

    async def fails() -> None:
        raise OSError("database unreachable")

    async def hangs() -> None:
        await asyncio.sleep(3600)

    app = health_app(
        service=service,
        live=lambda: True,
        checks={},
        check_timeout_s=0.3,
        collectors=[sample, fails, hangs],
    )
    started = time.monotonic()
    status, body = await _get(app, "/metrics")
    assert status == 200
    assert time.monotonic() - started < 2
    assert f'carelink_outbox_backlog{{service="{service}"}} 10.0' in body.decode()
    await _get(app, "/metrics")
    assert calls == 2
