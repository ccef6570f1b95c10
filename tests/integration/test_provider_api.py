"""Referral's provider routes (/v1/provider/…) against the running system: each provider
has its own credential and sees and reports only its own lines; another provider's line
is 404 like one that does not exist; a report that cannot be true is 422 naming the field,
one the line's state does not allow 409; the console's credential opens none of these
routes and a provider's none of the coordinators'."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.lib.policy import seoul_date
from services.lib.runtime.callers import actor_headers
from services.tools.simulators.hospital_io import publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import LocalSystem, SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HOME_CARE = "demo-homecare-southeast"
LUNCHBOX = "demo-lunchbox"


@pytest.fixture
async def api(system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    base = system_info.health["referral"].removesuffix("/health/ready")
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        yield client


def as_provider(system: LocalSystem, provider_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.provider_tokens[provider_id]}"}


async def ordered_case(system_info: SystemInfo, staff: Staff, intake_db: asyncpg.Connection) -> str:
    """A Songpa-gu case with home care (suggested: HOME_CARE) and meals (LUNCHBOX) ordered,
    by the coordinators through the console."""
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(
        district="Songpa-gu", services=["temporary_home_care", "meal_delivery"]
    )
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    case_id = await _case_id(intake_db, data["referral_id"])
    await staff.review(case_id)
    await staff.visit(case_id, "pre-discharge-visit")
    answer = await staff.plan(case_id, [("temporary_home_care", 8), ("meal_delivery", 10)])
    assert answer["outcome"] == "plan", answer
    return case_id


async def _case_id(intake_db: asyncpg.Connection, referral_id: str) -> str:
    deadline = time.monotonic() + 45
    while True:
        case_id: str | None = await intake_db.fetchval(
            "SELECT case_id FROM referrals WHERE referral_id = $1", referral_id
        )
        if case_id:
            return case_id
        assert time.monotonic() < deadline, f"intake never stored {referral_id}"
        await asyncio.sleep(0.2)


async def line_of(
    api: httpx.AsyncClient, system: LocalSystem, provider: str, case_id: str
) -> dict[str, Any]:
    r = await api.get("/v1/provider/lines", headers=as_provider(system, provider))
    assert r.status_code == 200, r.text
    assert r.json()["provider_id"] == provider
    return dict(next(x for x in r.json()["lines"] if x["case_id"] == case_id))


async def test_provider_routes_need_a_providers_own_credential(
    system: LocalSystem, api: httpx.AsyncClient
) -> None:
    console = actor_headers(system.console_token, "songpa", "centre-songpa-gu", "coordinator")
    for headers in (
        {},
        {"Authorization": "Bearer " + "x" * 43},
        {"Authorization": f"Basic {system.provider_tokens[HOME_CARE]}"},
        console,  # the console's credential is not a provider's
    ):
        for method, path in (
            ("GET", "/v1/provider/lines"),
            ("GET", "/v1/provider/lines/1"),
            ("POST", "/v1/provider/lines/1/report"),
        ):
            r = await api.request(method, path, headers=headers, json={"started_on": "2026-01-01"})
            assert r.status_code == 401, (method, path, r.text)
            assert r.json()["error"] == "unauthorized"
            assert system.provider_tokens[HOME_CARE] not in r.text
    # A provider's credential opens none of the coordinators' routes.
    r = await api.get(
        "/v1/queue",
        headers={
            **actor_headers("x", "songpa", "centre-songpa-gu", "coordinator"),
            **as_provider(system, HOME_CARE),
        },
    )
    assert r.status_code == 401, r.text


async def test_a_provider_sees_and_reports_only_its_own_lines(
    system: LocalSystem,
    system_info: SystemInfo,
    staff: Staff,
    api: httpx.AsyncClient,
    intake_db: asyncpg.Connection,
) -> None:
    case_id = await ordered_case(system_info, staff, intake_db)
    home = await line_of(api, system, HOME_CARE, case_id)
    meals = await line_of(api, system, LUNCHBOX, case_id)
    assert (home["line"], home["service"], home["quantity"], home["status"]) == (
        1,
        "temporary_home_care",
        8,
        "ordered",
    )
    assert (meals["line"], meals["service"]) == (2, "meal_delivery")
    # No personal data in what a provider sees.
    assert set(home) >= {"id", "case_id", "planned_start", "ordered_on"}
    assert not {"name", "phone", "address", "birth_date"} & set(home)

    # Another provider's line does not exist for it: reading or reporting, 404.
    today = seoul_date(datetime.now(UTC)).isoformat()
    theirs = as_provider(system, LUNCHBOX)
    r = await api.get(f"/v1/provider/lines/{home['id']}", headers=theirs)
    assert (r.status_code, r.json()["error"]) == (404, "not-found"), r.text
    r = await api.post(
        f"/v1/provider/lines/{home['id']}/report", headers=theirs, json={"started_on": today}
    )
    assert (r.status_code, r.json()["error"]) == (404, "not-found"), r.text
    r = await api.get("/v1/provider/lines/999999999", headers=theirs)
    assert r.status_code == 404
    r = await api.get(f"/v1/provider/lines/{home['id']}", headers=as_provider(system, HOME_CARE))
    assert (r.status_code, r.json()["status"]) == (200, "ordered")

    # Its own line: started, then ended in full.
    mine = as_provider(system, HOME_CARE)
    r = await api.post(
        f"/v1/provider/lines/{home['id']}/report", headers=mine, json={"started_on": today}
    )
    assert (r.status_code, r.json()["outcome"], r.json()["open_lines"]) == (
        200,
        "line-started",
        2,
    ), r.text
    # Starting twice is not a state the line can take: 409, nothing changes.
    r = await api.post(
        f"/v1/provider/lines/{home['id']}/report", headers=mine, json={"started_on": today}
    )
    assert (r.status_code, r.json()["error"]) == (409, "invalid-state"), r.text
    r = await api.post(
        f"/v1/provider/lines/{home['id']}/report",
        headers=mine,
        json={"ended_on": today, "delivered_units": 8},
    )
    body = r.json()
    assert (r.status_code, body["outcome"], body["open_lines"]) == (200, "line-ended", 1), r.text
    assert (body["line"]["outcome"], body["line"]["delivered_units"]) == ("delivered", 8)
    assert body["line"]["cost_krw"] == body["line"]["district_paid_krw"] > 0
    ended = await api.get("/v1/provider/lines", headers=mine, params={"status": "ended"})
    assert any(x["id"] == home["id"] for x in ended.json()["lines"])
    still_open = await api.get("/v1/provider/lines", headers=mine)
    assert all(x["id"] != home["id"] for x in still_open.json()["lines"])


async def test_impossible_reports_are_422_naming_the_field(
    system: LocalSystem,
    system_info: SystemInfo,
    staff: Staff,
    api: httpx.AsyncClient,
    intake_db: asyncpg.Connection,
) -> None:
    case_id = await ordered_case(system_info, staff, intake_db)
    meals = await line_of(api, system, LUNCHBOX, case_id)
    mine = as_provider(system, LUNCHBOX)
    today = seoul_date(datetime.now(UTC))
    path = f"/v1/provider/lines/{meals['id']}/report"

    async def refused(body: dict[str, Any], field: str) -> None:
        r = await api.post(path, headers=mine, json=body)
        assert (r.status_code, r.json()["error"]) == (422, "invalid-request"), (body, r.text)
        assert r.json()["message"].startswith(field) or f"{field}:" in r.json()["message"], (
            body,
            r.text,
        )

    tomorrow = (today + timedelta(days=1)).isoformat()
    await refused({"started_on": tomorrow}, "started_on")
    await refused({"started_on": "not a date"}, "started_on")
    await refused({}, "body")
    await refused({"started_on": today.isoformat(), "colour": "red"}, "colour")
    await refused({"ended_on": today.isoformat()}, "delivered_units")
    await refused({"ended_on": today.isoformat(), "delivered_units": -1}, "delivered_units")
    await refused(
        {"ended_on": today.isoformat(), "delivered_units": 0, "end_reason": "bored"}, "end_reason"
    )
    r = await api.post(path, headers=mine, json={"started_on": today.isoformat()})
    assert r.status_code == 200, r.text
    await refused({"ended_on": today.isoformat(), "delivered_units": 11}, "delivered_units")
    await refused({"ended_on": today.isoformat(), "delivered_units": 4}, "end_reason")
    await refused({"ended_on": tomorrow, "delivered_units": 10}, "ended_on")
    await refused(
        {"ended_on": (today - timedelta(days=1)).isoformat(), "delivered_units": 10}, "ended_on"
    )
    # Nothing of that changed the line.
    r = await api.get(f"/v1/provider/lines/{meals['id']}", headers=mine)
    assert (r.json()["status"], r.json()["delivered_units"]) == ("started", None)
    r = await api.post(
        path,
        headers=mine,
        json={"ended_on": today.isoformat(), "delivered_units": 4, "end_reason": "refused"},
    )
    assert (r.status_code, r.json()["line"]["outcome"]) == (200, "partly-delivered"), r.text
    r = await api.post(
        path,
        headers=mine,
        json={"ended_on": today.isoformat(), "delivered_units": 4, "end_reason": "refused"},
    )
    assert (r.status_code, r.json()["error"]) == (409, "invalid-state")
