"""The exits' refusals and the case page's forms (issue 10), against the running
system (real broker, PostgreSQL, the services and the console as processes): another
centre's case does not exist, a reason the coordinator may not give and a missing
confirmation are refused with the field named, only a lead corrects fee support, and
the case page's cancel form ends the case and comes back with its notice. The happy
paths as the hospital sees them are tests/e2e/test_exits.py."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from services.lib.runtime.callers import actor_headers
from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import LocalSystem, SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SONGPA = "centre-songpa-gu"
GANGNAM = "centre-gangnam-gu"
WAIT = 45.0


@pytest.fixture
async def console(system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system_info.console, timeout=20) as client:
        yield client


async def signed_in(console: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await console.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def triaged_case(system_info: SystemInfo, intake_db: asyncpg.Connection) -> str:
    """A Songpa-gu referral, once referral holds its case (its review task exists)."""
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(district="Songpa-gu")
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    deadline = time.monotonic() + WAIT
    referral = await asyncpg.connect(system_info.databases["referral"])
    try:
        while True:
            case_id: str | None = await intake_db.fetchval(
                "SELECT case_id FROM referrals WHERE referral_id = $1", data["referral_id"]
            )
            if case_id and await referral.fetchval(
                "SELECT 1 FROM cases WHERE case_id = $1", case_id
            ):
                return case_id
            assert time.monotonic() < deadline, "the referral never reached referral"
            await asyncio.sleep(0.2)
    finally:
        await referral.close()


def service_url(system_info: SystemInfo, service: str) -> str:
    return system_info.health[service].removesuffix("/health/ready")


async def test_the_services_refuse_exits_they_should_not_take(
    system: LocalSystem, system_info: SystemInfo, intake_db: asyncpg.Connection
) -> None:
    case_id = await triaged_case(system_info, intake_db)
    token = system.console_token
    gangnam = actor_headers(token, "gangnam", GANGNAM, "lead")
    songpa = actor_headers(token, "songpa", SONGPA, "coordinator")
    async with (
        httpx.AsyncClient(base_url=service_url(system_info, "intake"), timeout=20) as intake,
        httpx.AsyncClient(base_url=service_url(system_info, "referral"), timeout=20) as referral,
        httpx.AsyncClient(
            base_url=service_url(system_info, "scheduling"), timeout=20
        ) as scheduling,
    ):
        cancel = f"/v1/cases/{case_id}/cancel"
        # Another centre's case does not exist for them, for each exit.
        r = await intake.post(cancel, json={"reason_code": "deceased"}, headers=gangnam)
        assert (r.status_code, r.json()["error"]) == (404, "not-found")
        fee = f"/v1/cases/{case_id}/fee-support"
        r = await referral.post(fee, json={"fee_support": "full", "note": "x"}, headers=gangnam)
        assert (r.status_code, r.json()["error"]) == (404, "not-found")
        # The hospital's own withdrawal is not a coordinator's reason; a note has a bound.
        r = await intake.post(cancel, json={"reason_code": "cancelled-by-hospital"}, headers=songpa)
        assert (r.status_code, r.json()["error"]) == (422, "invalid-request")
        assert "reason_code" in r.json()["message"]
        r = await intake.post(
            cancel, json={"reason_code": "deceased", "note": "x" * 2001}, headers=songpa
        )
        assert (r.status_code, r.json()["error"]) == (422, "invalid-request")
        assert "note" in r.json()["message"]
        # Fee support: a lead's decision, with a note.
        r = await referral.post(fee, json={"fee_support": "full", "note": "x"}, headers=songpa)
        assert (r.status_code, r.json()["error"]) == (403, "forbidden")
        lead = actor_headers(token, "songpa-lead", SONGPA, "lead")
        r = await referral.post(fee, json={"fee_support": "full"}, headers=lead)
        assert (r.status_code, r.json()["error"]) == (422, "invalid-request")
        # Reopening a task that is not a visit on hold: refused, clearly.
        r = await scheduling.post("/v1/tasks/999999999/reopen", json={}, headers=songpa)
        assert (r.status_code, r.json()["error"]) == (404, "not-found")
    # Nothing was done: no exit recorded, the case still open.
    assert (
        await intake_db.fetchval("SELECT count(*) FROM case_exits WHERE case_id = $1", case_id) == 0
    )
    assert await intake_db.fetchval("SELECT open FROM cases WHERE case_id = $1", case_id)


async def test_the_case_pages_cancel_form_needs_its_confirmation_then_ends_the_case(
    system_info: SystemInfo, console: httpx.AsyncClient, intake_db: asyncpg.Connection
) -> None:
    case_id = await triaged_case(system_info, intake_db)
    songpa = await signed_in(console, "songpa", "songpa-demo")
    form = {"reason_code": "transferred", "note": "요양병원 전원"}
    path = f"/cases/{case_id}/cancel"

    unconfirmed = await console.post(path, data=form, headers=songpa)
    assert unconfirmed.status_code == 422
    assert "Tick the confirmation" in unconfirmed.text
    assert f'href="/cases/{case_id}"' in unconfirmed.text  # a way back to the case
    assert await intake_db.fetchval("SELECT open FROM cases WHERE case_id = $1", case_id)

    done = await console.post(path, data={**form, "confirm": "yes"}, headers=songpa)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == f"/cases/{case_id}?notice=case-cancelled"
    row: dict[str, Any] = dict(
        await intake_db.fetchrow(
            "SELECT reason_code, note, actor FROM case_exits WHERE case_id = $1", case_id
        )
    )
    assert row == {"reason_code": "transferred", "note": "요양병원 전원", "actor": "songpa"}
    assert not await intake_db.fetchval("SELECT open FROM cases WHERE case_id = $1", case_id)

    # Again: the service's refusal, shown with the way back.
    again = await console.post(path, data={**form, "confirm": "yes"}, headers=songpa)
    assert again.status_code == 409
    assert "already finished" in again.text
