"""Each service's own HTTP API (/v1 on its health port) against the running system
(real broker, PostgreSQL and the services as processes): referral's and
scheduling's tasks and case facts, intake's audited personal details.

Called here as the console calls them, with the console's credential that the
local stack generated for this run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
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


def base_url(system_info: SystemInfo, service: str) -> str:
    return system_info.health[service].removesuffix("/health/ready")


@pytest.fixture
async def clients(system_info: SystemInfo) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    async with (
        httpx.AsyncClient(base_url=base_url(system_info, "intake"), timeout=20) as intake,
        httpx.AsyncClient(base_url=base_url(system_info, "referral"), timeout=20) as referral,
        httpx.AsyncClient(base_url=base_url(system_info, "scheduling"), timeout=20) as scheduling,
    ):
        yield {"intake": intake, "referral": referral, "scheduling": scheduling}


@pytest.fixture
def token(system: LocalSystem) -> str:
    return system.console_token


def as_(
    token: str, username: str = "songpa", centre: str = SONGPA, role: str = "coordinator"
) -> dict[str, str]:
    """The headers the console sends for one of its coordinators."""
    return actor_headers(token, username, centre, role)


async def refer(system_info: SystemInfo) -> dict[str, Any]:
    hospital = FakeHospital("police-hospital")
    data = hospital.submission(district="Songpa-gu")
    await publish(system_info.kafka_bootstrap, [hospital.submitted(data)])
    return data


async def case_of(intake_db: asyncpg.Connection, referral_id: str) -> str:
    deadline = time.monotonic() + WAIT
    while True:
        case_id: str | None = await intake_db.fetchval(
            "SELECT case_id FROM referrals WHERE referral_id = $1", referral_id
        )
        if case_id:
            return case_id
        assert time.monotonic() < deadline, f"intake never stored {referral_id}"
        await asyncio.sleep(0.2)


async def task_of(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: str, kind: str
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        r = await client.get("/v1/queue", params={"kind": kind}, headers=headers)
        assert r.status_code == 200, r.text
        for task in r.json()["tasks"]:
            if task["case_id"] == case_id:
                return dict(task)
        assert time.monotonic() < deadline, f"no {kind} task for {case_id}"
        await asyncio.sleep(0.25)


async def new_review(
    clients: dict[str, httpx.AsyncClient],
    token: str,
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> tuple[dict[str, Any], dict[str, Any]]:
    data = await refer(system_info)
    case_id = await case_of(intake_db, data["referral_id"])
    return data, await task_of(clients["referral"], as_(token), case_id, "review")


# ------------------------------------------------------------------ credentials


async def test_every_api_call_needs_the_callers_credential(
    clients: dict[str, httpx.AsyncClient], token: str
) -> None:
    calls = [
        ("referral", "GET", "/v1/queue"),
        ("referral", "GET", "/v1/queue/fingerprint"),
        ("referral", "GET", "/v1/tasks/1"),
        ("referral", "POST", "/v1/tasks/1/claim"),
        ("referral", "GET", "/v1/cases/some-case"),
        ("scheduling", "GET", "/v1/queue"),
        ("scheduling", "POST", "/v1/tasks/1/complete"),
        ("intake", "GET", "/v1/cases/some-case/personal?purpose=task-page"),
    ]
    valid = as_(token)
    wrong = {**valid, "Authorization": "Bearer " + "x" * 43}
    missing = {k: v for k, v in valid.items() if k != "Authorization"}
    basic = {**valid, "Authorization": "Basic Y29uc29sZTp4"}
    for service, method, path in calls:
        for headers in (missing, wrong, basic):
            # A malformed body does not get past the missing credential either.
            r = await clients[service].request(method, path, headers=headers, content=b"{")
            assert r.status_code == 401, (service, path, r.text)
            assert r.json()["error"] == "unauthorized"
            assert token not in r.text
    for service in ("referral", "scheduling"):
        ok = await clients[service].get("/v1/queue", headers=valid)
        assert ok.status_code == 200, ok.text
        assert ok.json()["centre_id"] == SONGPA
    # The coordinator must be named: a credential alone is not enough.
    anonymous = {"Authorization": f"Bearer {token}"}
    r = await clients["referral"].get("/v1/queue", headers=anonymous)
    assert (r.status_code, r.json()["error"]) == (422, "invalid-request")
    assert "X-Carelink-Actor" in r.json()["message"]
    health = await clients["referral"].get("/health/ready")
    assert health.status_code == 200, "health needs no credential"


# ------------------------------------------------------------------ tasks


async def test_another_centres_task_and_case_do_not_exist(
    clients: dict[str, httpx.AsyncClient],
    token: str,
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    _, task = await new_review(clients, token, system_info, intake_db)
    referral = clients["referral"]
    gangnam = as_(token, "gangnam", GANGNAM)
    not_found = {"error": "not-found", "message": "no such task"}
    for method, path, body in [
        ("GET", f"/v1/tasks/{task['id']}", None),
        ("POST", f"/v1/tasks/{task['id']}/claim", None),
        ("POST", f"/v1/tasks/{task['id']}/renew", None),
        ("POST", f"/v1/tasks/{task['id']}/release", None),
        ("POST", f"/v1/tasks/{task['id']}/complete", {"decision": "eligible"}),
        ("POST", f"/v1/tasks/{task['id']}/reassign", {"to": "gangnam"}),
    ]:
        r = await referral.request(method, path, headers=gangnam, json=body)
        assert r.status_code == 404, (path, r.text)
        assert r.json() == not_found
    unknown = await referral.get("/v1/tasks/999999999", headers=gangnam)
    assert unknown.json() == not_found
    case = await referral.get(f"/v1/cases/{task['case_id']}", headers=gangnam)
    assert (case.status_code, case.json()["error"]) == (404, "not-found")
    queue = await referral.get("/v1/queue", headers=gangnam)
    assert task["id"] not in {t["id"] for t in queue.json()["tasks"]}
    # Nothing changed for Songpa.
    mine = await referral.get(f"/v1/tasks/{task['id']}", headers=as_(token))
    assert (mine.json()["status"], mine.json()["claimed_by"]) == ("open", None)


async def test_malformed_requests_are_422_naming_the_field(
    clients: dict[str, httpx.AsyncClient],
    token: str,
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    referral, songpa = clients["referral"], as_(token)
    for params, field in [({"kind": "surgery"}, "kind"), ({"status": "lost"}, "status")]:
        r = await referral.get("/v1/queue", params=params, headers=songpa)
        assert (r.status_code, r.json()["error"]) == (422, "invalid-request")
        assert r.json()["message"].startswith(field), r.text
    r = await referral.get("/v1/queue", params={"limit": "0"}, headers=songpa)
    assert r.status_code == 422
    assert "limit" in r.json()["message"]
    # A kind the other service owns is unknown here.
    r = await referral.get("/v1/queue", params={"kind": "pre-discharge-visit"}, headers=songpa)
    assert r.status_code == 422

    _, task = await new_review(clients, token, system_info, intake_db)
    claim = await referral.post(f"/v1/tasks/{task['id']}/claim", headers=songpa)
    assert claim.status_code == 200, claim.text
    complete = f"/v1/tasks/{task['id']}/complete"
    for body, field in [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "ineligible", "reason_code": "bored"}, "reason_code"),
        ({"decision": "eligible", "colour": "red"}, "colour"),
    ]:
        r = await referral.post(complete, json=body, headers=songpa)
        assert (r.status_code, r.json()["error"]) == (422, "invalid-request"), r.text
        assert field in r.json()["message"], r.text
    r = await referral.post(complete, content=b"not json", headers=songpa)
    assert r.status_code == 422
    r = await referral.post(
        f"/v1/tasks/{task['id']}/reassign", json={"to": ""}, headers=as_(token, role="lead")
    )
    assert r.status_code == 422
    assert "to" in r.json()["message"]
    # The task is still held and open to completion: nothing was half-done.
    held = await referral.get(f"/v1/tasks/{task['id']}", headers=songpa)
    assert (held.json()["status"], held.json()["claimed_by"]) == ("claimed", "songpa")


async def test_claim_renew_release_reassign_and_complete(
    clients: dict[str, httpx.AsyncClient],
    token: str,
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    referral, songpa, lead = clients["referral"], as_(token), as_(token, "songpa-lead", role="lead")
    data, task = await new_review(clients, token, system_info, intake_db)
    url = f"/v1/tasks/{task['id']}"
    before = await referral.get("/v1/queue/fingerprint", headers=songpa)

    claimed = await referral.post(f"{url}/claim", headers=songpa)
    assert claimed.status_code == 200, claimed.text
    body = claimed.json()
    assert (body["service"], body["status"], body["claimed_by"]) == (
        "referral",
        "claimed",
        "songpa",
    )
    # The lease is referral's own setting (CARELINK_LEASE_MINUTES, 30 by default).
    lease = datetime.fromisoformat(body["lease_until"]) - datetime.now().astimezone()
    assert timedelta(minutes=29) < lease <= timedelta(minutes=30)
    after = await referral.get("/v1/queue/fingerprint", headers=songpa)
    assert after.json()["fingerprint"] != before.json()["fingerprint"]

    other = await referral.post(f"{url}/claim", headers=lead)
    assert (other.status_code, other.json()["error"]) == (409, "claimed-by-other")
    not_theirs = await referral.post(f"{url}/renew", headers=lead)
    assert (not_theirs.status_code, not_theirs.json()["error"]) == (409, "claimed-by-other")
    renewed = await referral.post(f"{url}/renew", headers=songpa)
    assert renewed.status_code == 200
    assert renewed.json()["lease_until"] >= body["lease_until"]

    refused = await referral.post(f"{url}/reassign", json={"to": "songpa-lead"}, headers=songpa)
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    handed = await referral.post(f"{url}/reassign", json={"to": "songpa-lead"}, headers=lead)
    assert handed.json()["claimed_by"] == "songpa-lead"
    released = await referral.post(f"{url}/release", headers=lead)
    assert (released.json()["status"], released.json()["claimed_by"]) == ("open", None)
    again = await referral.post(f"{url}/renew", headers=songpa)
    assert (again.status_code, again.json()["error"]) == (409, "not-claimed")

    assert (await referral.post(f"{url}/claim", headers=songpa)).status_code == 200
    done = await referral.post(f"{url}/complete", json={"decision": "eligible"}, headers=songpa)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "reviewed"
    assert done.json()["task"]["status"] == "done"
    assert done.json()["task"]["result"] == {"decision": "eligible", "reason_code": None}
    closed = await referral.post(f"{url}/complete", json={"decision": "eligible"}, headers=songpa)
    assert (closed.status_code, closed.json()["error"]) == (409, "task-closed")

    facts = await referral.get(f"/v1/cases/{task['case_id']}", headers=songpa)
    assert facts.status_code == 200, facts.text
    assert facts.json()["facts"]["centre_id"] == SONGPA
    assert facts.json()["facts"]["requested_services"] == data["requested_services"]
    assert set(facts.json()["facts"]["default_quantities"]) == set(data["requested_services"])
    assert [t["kind"] for t in facts.json()["tasks"]] == ["review"]

    # The case moves on to scheduling, which serves its visits the same way.
    scheduling = clients["scheduling"]
    visit = await task_of(scheduling, songpa, task["case_id"], "pre-discharge-visit")
    vurl = f"/v1/tasks/{visit['id']}"
    assert (await scheduling.post(f"{vurl}/claim", headers=songpa)).status_code == 200
    bad = await scheduling.post(f"{vurl}/complete", json={"reached": True}, headers=songpa)
    assert (bad.status_code, bad.json()["error"]) == (422, "invalid-request")
    assert "precautions_acknowledged" in bad.json()["message"]
    missed = await scheduling.post(f"{vurl}/complete", json={"reached": False}, headers=songpa)
    assert missed.status_code == 200, missed.text
    assert missed.json()["outcome"] == "contact-failed"
    assert missed.json()["task"]["attempts"] == 1
    # Findings are codes of the vocabulary: another is refused, the field named.
    unknown = await scheduling.post(
        f"{vurl}/complete",
        json={
            "reached": True,
            "precautions_acknowledged": True,
            "findings": ["fall-risk", "not-in-the-vocabulary"],
        },
        headers=songpa,
    )
    assert (unknown.status_code, unknown.json()["error"]) == (422, "invalid-request")
    assert unknown.json()["message"].startswith("findings.1: ")
    assert "not-in-the-vocabulary" not in unknown.json()["message"]
    visited = await scheduling.post(
        f"{vurl}/complete",
        json={"reached": True, "precautions_acknowledged": True, "findings": ["fall-risk"]},
        headers=songpa,
    )
    assert visited.status_code == 200, visited.text
    assert visited.json()["outcome"] == "visited"
    case = await scheduling.get(f"/v1/cases/{task['case_id']}", headers=songpa)
    assert case.json()["facts"]["reviewed"] is True
    assert case.json()["facts"]["expected_discharge_date"] == data["expected_discharge_date"]


# ------------------------------------------------------------------ personal details


async def test_intake_serves_personal_details_to_the_cases_centre_and_audits_every_read(
    clients: dict[str, httpx.AsyncClient],
    token: str,
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    intake = clients["intake"]
    data = await refer(system_info)
    case_id = await case_of(intake_db, data["referral_id"])
    path = f"/v1/cases/{case_id}/personal"

    r = await intake.get(path, params={"purpose": "case-review"}, headers=as_(token))
    assert r.status_code == 200, r.text
    (referral,) = r.json()["referrals"]
    assert referral["patient"]["name"] == data["patient"]["name"]
    assert referral["patient"]["phone"] == data["patient"]["phone"]
    rows = await intake_db.fetch(
        "SELECT viewer, purpose FROM access_audit WHERE case_id = $1 ORDER BY id", case_id
    )
    assert [(row["viewer"], row["purpose"]) for row in rows] == [("songpa", "case-review")]

    # Another centre's coordinator: the case does not exist for them, and nothing is read.
    other = await intake.get(
        path, params={"purpose": "case-review"}, headers=as_(token, "gangnam", GANGNAM)
    )
    assert (other.status_code, other.json()["error"]) == (404, "not-found")
    assert data["patient"]["name"] not in other.text
    unknown = await intake.get(
        "/v1/cases/case-nobody/personal", params={"purpose": "x"}, headers=as_(token)
    )
    assert unknown.status_code == 404
    for params in ({}, {"purpose": "Not A Code!"}):
        bad = await intake.get(path, params=params, headers=as_(token))
        assert (bad.status_code, bad.json()["error"]) == (422, "invalid-request")
        assert "purpose" in bad.json()["message"]
    # Intake serves personal details and nothing else.
    for other_path in ("/v1/queue", f"/v1/cases/{case_id}", "/v1/tasks/1"):
        assert (await intake.get(other_path, headers=as_(token))).status_code == 404
    count = await intake_db.fetchval(
        "SELECT count(*) FROM access_audit WHERE case_id = $1", case_id
    )
    assert count == 1
