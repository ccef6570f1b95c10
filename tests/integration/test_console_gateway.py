"""The console as a gateway when a service is down: its API and pages answer 503
naming the service, and nothing is half-done (no personal details read, no
audit row, no action taken).

The console runs in-process here (its ASGI app with its lifespan) against the
running system's real services, with one service's URL pointing at a port
where nothing listens."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest

from services.console import metrics
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import LocalSystem, SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT = 45.0
Console = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def _nothing_listens() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def console(system: LocalSystem, system_info: SystemInfo) -> Console:
    """An in-process console whose named services are down."""

    @asynccontextmanager
    async def start(*down: str) -> AsyncIterator[httpx.AsyncClient]:
        urls = {
            f"{name}_url": (
                _nothing_listens()
                if name in down
                else system_info.health[name].removesuffix("/health/ready")
            )
            for name in ("intake", "referral", "scheduling", "outcome")
        }
        settings = ConsoleSettings(
            api_token=system.console_token,
            service_timeout_s=2.0,
            read_retries=1,
            events_poll_interval_s=0.2,
            **urls,  # type: ignore[arg-type]
        )
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://console", timeout=30
            ) as client,
        ):
            yield client

    return start


async def sign_in(client: httpx.AsyncClient, username: str = "songpa") -> dict[str, str]:
    passwords = {"songpa": "songpa-demo", "songpa-lead": "lead-demo"}
    r = await client.post(
        "/api/login", json={"username": username, "password": passwords[username]}
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def review_task(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> dict[str, Any]:
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(district="Songpa-gu")
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    deadline = time.monotonic() + WAIT
    while True:
        case_id = await intake_db.fetchval(
            "SELECT case_id FROM referrals WHERE referral_id = $1", data["referral_id"]
        )
        if case_id:
            r = await client.get("/api/queue", params={"kind": "review"}, headers=headers)
            assert r.status_code == 200, r.text
            found = [t for t in r.json()["tasks"] if t["case_id"] == case_id]
            if found:
                return dict(found[0])
        assert time.monotonic() < deadline, "no review task"
        await asyncio.sleep(0.25)


def assert_unavailable(response: httpx.Response, service: str) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "service-unavailable"
    assert service in body["message"]


async def test_with_scheduling_down_the_console_says_so_and_does_nothing_half(
    console: Console, system_info: SystemInfo, intake_db: asyncpg.Connection
) -> None:
    async with console("scheduling") as client:
        health = await client.get("/api/health")
        assert health.status_code == 503
        assert health.json() == {
            "ok": False,
            "checks": {"intake": True, "referral": True, "scheduling": False, "outcome": True},
        }
        songpa = await sign_in(client)  # signing in needs no service

        # The whole queue needs both task services: 503 naming the one that is down.
        assert_unavailable(await client.get("/api/queue", headers=songpa), "scheduling")
        assert "referral" not in (await client.get("/api/queue", headers=songpa)).text
        # Reviews are referral's alone: they are still served.
        task = await review_task(client, songpa, system_info, intake_db)

        # The task page needs scheduling's facts too: 503, and intake was never asked,
        # so no personal details left the service and no audit row was written.
        detail = await client.get(f"/api/tasks/referral/{task['id']}", headers=songpa)
        assert_unavailable(detail, "scheduling")
        audited = await intake_db.fetchval(
            "SELECT count(*) FROM access_audit WHERE case_id = $1", task["case_id"]
        )
        assert audited == 0
        page = await client.get(f"/tasks/referral/{task['id']}", headers=songpa)
        assert page.status_code == 503
        assert "scheduling" in page.text
        assert page.headers["content-type"].startswith("text/html")
        queue_page = await client.get("/", headers=songpa)
        assert queue_page.status_code == 503
        assert "scheduling" in queue_page.text

        # An action on a scheduling task: nothing was done, and the answer says so.
        claim = await client.post("/api/tasks/scheduling/1/claim", headers=songpa)
        assert_unavailable(claim, "scheduling")
        assert "nothing was done" in claim.json()["message"]
        # An action on referral's task still works: only what needs scheduling fails.
        claimed = await client.post(f"/api/tasks/referral/{task['id']}/claim", headers=songpa)
        assert claimed.status_code == 200, claimed.text


async def test_with_intake_down_no_task_page_shows_without_personal_details(
    console: Console, system_info: SystemInfo, intake_db: asyncpg.Connection
) -> None:
    async with console("intake") as client:
        health = await client.get("/api/health")
        assert health.json()["checks"] == {
            "intake": False,
            "referral": True,
            "scheduling": True,
            "outcome": True,
        }
        songpa = await sign_in(client)
        task = await review_task(client, songpa, system_info, intake_db)
        detail = await client.get(f"/api/tasks/referral/{task['id']}", headers=songpa)
        assert_unavailable(detail, "intake")


async def test_with_every_service_down_one_answer_names_them_all(console: Console) -> None:
    async with console("intake", "referral", "scheduling", "outcome") as client:
        health = await client.get("/api/health")
        assert health.status_code == 503
        assert not any(health.json()["checks"].values())
        songpa = await sign_in(client)
        queue = await client.get("/api/queue", headers=songpa)
        assert_unavailable(queue, "referral")
        assert "scheduling" in queue.json()["message"]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_console_counts_its_answers_its_calls_and_its_sign_ins(console: Console) -> None:
    def queue_answers() -> float:
        return _sample("carelink_console_requests_total", route="/api/queue", outcome="2xx")

    before = {
        "accepted": _sample("carelink_console_sign_ins_total", outcome="accepted"),
        "refused": _sample("carelink_console_sign_ins_total", outcome="refused"),
        "queue": queue_answers(),
        "referral": _sample(
            "carelink_console_service_calls_total", service="referral", outcome="ok"
        ),
        "down": _sample(
            "carelink_console_service_calls_total", service="scheduling", outcome="unavailable"
        ),
    }
    async with console("scheduling") as client:
        wrong = await client.post("/api/login", json={"username": "songpa", "password": "nope"})
        assert wrong.status_code == 401
        headers = await sign_in(client)
        r = await client.get("/api/queue", params={"kind": "review"}, headers=headers)
        assert r.status_code == 200, r.text
        r = await client.get("/api/queue", headers=headers)
        assert r.status_code == 503, r.text
        r = await client.get("/api/tasks/referral/999999999", headers=headers)
    assert _sample("carelink_console_sign_ins_total", outcome="accepted") == before["accepted"] + 1
    assert _sample("carelink_console_sign_ins_total", outcome="refused") == before["refused"] + 1
    assert queue_answers() == before["queue"] + 1
    assert (
        _sample("carelink_console_service_calls_total", service="referral", outcome="ok")
        > before["referral"]
    )
    # A read is tried again (read_retries=1): two calls found nothing listening.
    assert (
        _sample("carelink_console_service_calls_total", service="scheduling", outcome="unavailable")
        >= before["down"] + 2
    )
    # A path with an id is counted under its route template, never under the id.
    assert (
        _sample(
            "carelink_console_requests_total", route="/api/tasks/{service}/{task_id}", outcome="4xx"
        )
        >= 1
    )
    # In no label (a sample's value may hold the digits: 92.28999999999999 CPU seconds).
    label_values = [v for m in REGISTRY.collect() for s in m.samples for v in s.labels.values()]
    assert label_values
    assert not [v for v in label_values if "999999999" in v]
    assert "songpa" not in generate_latest(REGISTRY).decode()


def test_the_console_serves_its_metrics_on_their_own_port_only_when_asked() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics.serve("127.0.0.1", 0)  # 0: not served, nothing binds
    metrics.serve("127.0.0.1", port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        body = answer.read().decode()
    assert "carelink_console_requests_total" in body
    assert "carelink_console_sign_ins_total" in body
