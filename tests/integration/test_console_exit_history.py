"""The exits taken on a case on the console's case page (issue 10), against the
running system's real services: a visit reopened (scheduling's task_audit), fee
support corrected by a lead (referral's fee_corrections) and the case cancelled
(intake's case_exits) are read back through each service's API and shown in the
case's timeline with who, when, the reason in Korean and English and the note.

One referral; the console runs in-process against the services, as in
test_console_find_cases.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import LocalSystem, SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

WAIT = 60.0
REOPEN_NOTE = "보호자 새 번호로 연락"
FEE_NOTE = "소득 자료 재확인"
CANCEL_NOTE = "가족이 사망을 알려 옴"


@pytest.fixture(scope="module")
async def client(system: LocalSystem, system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    urls = {
        f"{name}_url": system_info.health[name].removesuffix("/health/ready")
        for name in ("intake", "referral", "scheduling", "outcome")
    }
    app = create_app(ConsoleSettings(api_token=system.console_token, **urls))  # type: ignore[arg-type]
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://console", timeout=30
        ) as http,
    ):
        yield http


async def _sign_in(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await client.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def until(what: str, probe: Callable[[], Awaitable[Any]]) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        found = await probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.3)


async def _task(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, kind: str, status: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        r = await client.get(f"/api/cases/{case_id}", headers=headers)
        if r.status_code != 200:
            return None
        found = [t for t in r.json()["tasks"] if t["kind"] == kind and t["status"] == status]
        return found[0] if found else None

    found: dict[str, Any] = await until(f"{kind} {status}", probe)
    return found


async def _act(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, body: Any = None
) -> dict[str, Any]:
    r = await client.post(path, json=body, headers=headers)
    assert r.status_code == 200, (path, r.text)
    answer: dict[str, Any] = r.json()
    return answer


async def test_the_case_page_shows_every_exit_with_who_the_reason_and_the_note(
    client: httpx.AsyncClient, system_info: SystemInfo
) -> None:
    songpa = await _sign_in(client, "songpa", "songpa-demo")
    lead = await _sign_in(client, "songpa-lead", "lead-demo")
    hospital = FakeHospital("police-hospital")
    submission = hospital.submission(district="Songpa-gu", discharge_in_days=9)
    await publish(system_info.kafka_bootstrap, [hospital.submitted(submission)])
    intake_db = await asyncpg.connect(system_info.databases["intake"])
    try:
        case_id: str = await until(
            "the case",
            lambda: intake_db.fetchval(
                "SELECT case_id FROM referrals WHERE referral_id = $1 AND outcome = 'accepted'",
                submission["referral_id"],
            ),
        )
    finally:
        await intake_db.close()

    # Reviewed, then the person cannot be reached: on hold, reopened with a note.
    review = await _task(client, songpa, case_id, "review", "open")
    await _act(client, songpa, f"/api/tasks/referral/{review['id']}/claim")
    await _act(
        client, songpa, f"/api/tasks/referral/{review['id']}/complete", {"decision": "eligible"}
    )
    visit = await _task(client, songpa, case_id, "pre-discharge-visit", "open")
    await _act(client, songpa, f"/api/tasks/scheduling/{visit['id']}/claim")
    for _ in range(3):
        path = f"/api/tasks/scheduling/{visit['id']}/complete"
        r = await client.post(path, json={"reached": False}, headers=songpa)
        assert r.status_code == 200, r.text
    await _task(client, songpa, case_id, "pre-discharge-visit", "suspended")
    await _act(client, songpa, f"/api/tasks/scheduling/{visit['id']}/reopen", {"note": REOPEN_NOTE})
    # A lead corrects the fee support before the care plan; then the case is cancelled.
    before = (await client.get(f"/api/cases/{case_id}", headers=lead)).json()["facts"]
    corrected = "self-pay" if before["fee_support"] == "full" else "full"
    await _act(
        client,
        lead,
        f"/api/cases/{case_id}/fee-support",
        {"fee_support": corrected, "note": FEE_NOTE},
    )
    await _act(
        client,
        songpa,
        f"/api/cases/{case_id}/cancel",
        {"reason_code": "deceased", "note": CANCEL_NOTE},
    )

    case = await client.get(f"/api/cases/{case_id}", headers=songpa)
    page = await client.get(f"/cases/{case_id}", headers=songpa)

    assert case.status_code == 200, case.text
    exits = case.json()["exits"]
    assert [(e["action"], e["service"], e["actor"]) for e in exits] == [
        ("reopen", "scheduling", "songpa"),
        ("fee-support", "referral", "songpa-lead"),
        ("cancel", "intake", "songpa"),
    ]
    reopened, fee, cancelled = exits
    assert (reopened["reason_code"], reopened["note"], reopened["task_id"]) == (
        "unreachable",
        REOPEN_NOTE,
        visit["id"],
    )
    assert (fee["previous"], fee["fee_support"], fee["note"]) == (
        before["fee_support"],
        corrected,
        FEE_NOTE,
    )
    assert (cancelled["reason_code"], cancelled["note"]) == ("deceased", CANCEL_NOTE)
    assert all(e["at"] for e in exits)

    assert page.status_code == 200, page.text
    assert page.text.count('data-what="exit"') == 3
    for shown in ("연락 불가 Unreachable", "사망 Deceased", REOPEN_NOTE, FEE_NOTE, CANCEL_NOTE):
        assert shown in page.text
    assert "사례 취소 Case cancelled" in page.text

    # Another centre sees none of it: scheduling's new read answers 404 there too.
    gangnam = await _sign_in(client, "gangnam", "gangnam-demo")
    other = await client.get(f"/api/cases/{case_id}", headers=gangnam)
    assert other.status_code == 404
