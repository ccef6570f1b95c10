"""The coordinators' console API against the running system (real broker, PostgreSQL
and the four services as processes): sign-in, centre isolation, exclusive claims,
completing tasks, the audits, live events.

The console is a gateway: every answer here comes from the services' own HTTP
APIs (it has no database). The tests read the services' databases only to check
what happened (audit rows) or to move time on (an expired lease)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from contracts import topics
from services.lib.policy import load_policies
from services.lib.signin import SessionStore
from services.tools.simulators.hospital_io import UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack import SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

POLICE = "police-hospital"
PASSWORDS = {"songpa": "songpa-demo", "songpa-lead": "lead-demo", "gangnam": "gangnam-demo"}
WAIT = 45.0


# ------------------------------------------------------------------ helpers


@pytest.fixture
async def api(system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    assert system_info.console.startswith("http://127.0.0.1:")
    async with httpx.AsyncClient(base_url=system_info.console, timeout=20) as client:
        yield client


@pytest.fixture
async def as_user(api: httpx.AsyncClient) -> dict[str, dict[str, str]]:
    """Authorization headers for each demo user, signed in through the API."""
    headers = {}
    for username, password in PASSWORDS.items():
        r = await api.post("/api/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        headers[username] = {"Authorization": f"Bearer {r.json()['token']}"}
    return headers


@pytest.fixture
async def updates(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as reader:
        yield reader


async def refer(system_info: SystemInfo, **submission: Any) -> dict[str, Any]:
    """A hospital referral published exactly as the Police Hospital would."""
    hospital = FakeHospital(POLICE)
    data = hospital.submission(**{"district": "Songpa-gu", **submission})
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


async def task_in_queue(
    api: httpx.AsyncClient, headers: dict[str, str], case_id: str, kind: str
) -> dict[str, Any]:
    """Wait (bounded) until the user's queue shows the case's task of this kind."""
    deadline = time.monotonic() + WAIT
    while True:
        r = await api.get("/api/queue", params={"kind": kind}, headers=headers)
        assert r.status_code == 200, r.text
        for task in r.json()["tasks"]:
            if task["case_id"] == case_id and task["kind"] == kind:
                return dict(task)
        assert time.monotonic() < deadline, f"no {kind} task for {case_id} in the queue"
        await asyncio.sleep(0.25)


async def new_review(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
    **submission: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    data = await refer(system_info, **submission)
    case_id = await case_of(intake_db, data["referral_id"])
    return data, await task_in_queue(api, as_user["songpa"], case_id, "review")


def url(task: dict[str, Any], action: str = "") -> str:
    return f"/api/tasks/{task['service']}/{task['id']}" + (f"/{action}" if action else "")


async def until_status(reader: UpdatesReader, referral_id: str, business_status: str) -> None:
    await reader.wait_for(
        lambda seen: any(u.data["business_status"] == business_status for u in seen[referral_id]),
        timeout=WAIT,
    )


# ------------------------------------------------------------------ sign-in


async def test_login_gives_a_token_and_refuses_wrong_credentials(
    api: httpx.AsyncClient,
) -> None:
    good = await api.post("/api/login", json={"username": "songpa", "password": "songpa-demo"})
    assert good.status_code == 200
    body = good.json()
    assert body["token"]
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 8 * 3600
    assert body["user"] == {
        "username": "songpa",
        "display_name": body["user"]["display_name"],
        "centre_id": "centre-songpa-gu",
        "role": "coordinator",
    }
    me = await api.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "songpa"

    for username, password in [("songpa", "wrong"), ("nobody", "songpa-demo"), ("songpa", "")]:
        r = await api.post("/api/login", json={"username": username, "password": password})
        assert r.status_code in (401, 422), r.text
        assert r.json()["error"] in ("unauthorized", "invalid-request")
    bad = await api.post("/api/login", json={"username": "songpa", "password": "wrong"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "unauthorized"
    assert "token" not in bad.json()


async def test_missing_invalid_or_foreign_tokens_are_401(api: httpx.AsyncClient) -> None:
    forged = SessionStore(
        "not-the-console-key", max_age_s=3600, salt="carelink.console.session"
    ).issue("songpa")
    for headers in [
        {},
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": "Basic c29uZ3BhOnNvbmdwYS1kZW1v"},
    ]:
        for method, path in [
            ("GET", "/api/queue"),
            ("GET", "/api/me"),
            ("GET", "/api/events"),
            ("GET", "/api/tasks/referral/1"),
            ("POST", "/api/tasks/referral/1/claim"),
        ]:
            r = await api.request(method, path, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    health = await api.get("/api/health")
    assert health.status_code == 200
    assert health.json()["ok"] is True


# Expiry, revocation and salted hashes are unit-tested in tests/unit/signin.


# ------------------------------------------------------------------ the queue and isolation


async def test_a_new_referral_reaches_its_centres_queue_only(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    _, task = await new_review(api, as_user, system_info, intake_db)
    assert task["status"] == "open"
    assert task["centre_id"] == "centre-songpa-gu"
    assert task["service"] == "referral"
    assert task["claimed_by"] is None

    gangnam = await api.get("/api/queue", headers=as_user["gangnam"])
    assert gangnam.status_code == 200
    assert gangnam.json()["centre_id"] == "centre-gangnam-gu"
    assert all(t["centre_id"] == "centre-gangnam-gu" for t in gangnam.json()["tasks"])
    assert task["case_id"] not in {t["case_id"] for t in gangnam.json()["tasks"]}

    # Another centre's task does not exist for gangnam: the same 404 as an unknown id.
    for method, action in [
        ("GET", ""),
        ("POST", "claim"),
        ("POST", "release"),
        ("POST", "complete"),
    ]:
        kwargs: dict[str, Any] = {"json": {"decision": "eligible"}} if action == "complete" else {}
        r = await api.request(method, url(task, action), headers=as_user["gangnam"], **kwargs)
        assert r.status_code == 404, (action, r.text)
        assert r.json() == {"error": "not-found", "message": "no such task"}
    unknown = await api.get("/api/tasks/referral/999999999", headers=as_user["gangnam"])
    assert unknown.status_code == 404
    assert unknown.json() == r.json()
    # Gangnam's touching it changed nothing.
    again = await task_in_queue(api, as_user["songpa"], task["case_id"], "review")
    assert again["status"] == "open"


async def test_queue_order_and_filters(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    _, urgent = await new_review(api, as_user, system_info, intake_db, priority="urgent")
    r = await api.get("/api/queue", headers=as_user["songpa"])
    tasks = r.json()["tasks"]
    keys = [(t["priority"] != "urgent", t["due_at"]) for t in tasks]
    assert keys == sorted(keys), "urgent first, then by deadline"
    assert tasks[0]["priority"] == "urgent"

    reviews = await api.get(
        "/api/queue", params={"kind": "review", "status": "open"}, headers=as_user["songpa"]
    )
    assert {t["kind"] for t in reviews.json()["tasks"]} == {"review"}
    assert {t["status"] for t in reviews.json()["tasks"]} == {"open"}
    assert urgent["id"] in {t["id"] for t in reviews.json()["tasks"]}
    visits = await api.get(
        "/api/queue",
        params={"kind": "pre-discharge-visit,post-discharge-visit"},
        headers=as_user["songpa"],
    )
    assert {t["service"] for t in visits.json()["tasks"]} <= {"scheduling"}
    overdue = await api.get("/api/queue", params={"overdue": "true"}, headers=as_user["songpa"])
    assert all(t["overdue"] for t in overdue.json()["tasks"])
    assert urgent["id"] not in {
        t["id"] for t in overdue.json()["tasks"] if t["service"] == "referral"
    }
    for params in [{"kind": "surgery"}, {"status": "lost"}, {"limit": "0"}]:
        bad = await api.get("/api/queue", params=params, headers=as_user["songpa"])
        assert bad.status_code == 422, params
        assert bad.json()["error"] == "invalid-request"


# ------------------------------------------------------------------ claims


async def test_claims_are_exclusive_and_only_leads_reassign(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    _, task = await new_review(api, as_user, system_info, intake_db)
    first = await api.post(url(task, "claim"), headers=as_user["songpa"])
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "claimed"
    assert first.json()["claimed_by"] == "songpa"
    # The lease is referral's setting (CARELINK_LEASE_MINUTES, 30 by default), not the console's.
    lease = datetime.fromisoformat(first.json()["lease_until"]) - datetime.now(UTC)
    assert timedelta(minutes=29) < lease <= timedelta(minutes=30)

    second = await api.post(url(task, "claim"), headers=as_user["songpa-lead"])
    assert second.status_code == 409
    assert second.json()["error"] == "claimed-by-other"
    renew = await api.post(url(task, "claim"), headers=as_user["songpa"])
    assert renew.status_code == 200
    assert renew.json()["claimed_by"] == "songpa"
    not_theirs = await api.post(url(task, "release"), headers=as_user["songpa-lead"])
    assert (not_theirs.status_code, not_theirs.json()["error"]) == (409, "claimed-by-other")

    # Reassigning is a lead's move, to a colleague of the same centre.
    refused = await api.post(
        url(task, "reassign"), json={"to": "songpa-lead"}, headers=as_user["songpa"]
    )
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    elsewhere = await api.post(
        url(task, "reassign"), json={"to": "gangnam"}, headers=as_user["songpa-lead"]
    )
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (422, "invalid-request")
    handed = await api.post(
        url(task, "reassign"), json={"to": "songpa-lead"}, headers=as_user["songpa-lead"]
    )
    assert handed.status_code == 200
    assert handed.json()["claimed_by"] == "songpa-lead"
    gone = await api.post(url(task, "release"), headers=as_user["songpa"])
    assert (gone.status_code, gone.json()["error"]) == (409, "claimed-by-other")
    back = await api.post(url(task, "release"), headers=as_user["songpa-lead"])
    assert back.status_code == 200
    assert (back.json()["status"], back.json()["claimed_by"]) == ("open", None)
    not_claimed = await api.post(url(task, "release"), headers=as_user["songpa"])
    assert (not_claimed.status_code, not_claimed.json()["error"]) == (409, "not-claimed")

    # Two coordinators clicking at the same moment: exactly one gets it, every time.
    for _ in range(5):
        answers = await asyncio.gather(
            api.post(url(task, "claim"), headers=as_user["songpa"]),
            api.post(url(task, "claim"), headers=as_user["songpa-lead"]),
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 409], [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 200).json()["claimed_by"]
        loser = next(a for a in answers if a.status_code == 409)
        assert loser.json()["error"] == "claimed-by-other"
        released = await api.post(url(task, "release"), headers=as_user[winner])
        assert released.status_code == 200


# ------------------------------------------------------------------ completing


async def test_review_visit_and_care_plan_move_the_case(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
    referral_db: asyncpg.Connection,
    updates: UpdatesReader,
) -> None:
    songpa = as_user["songpa"]
    data, review = await new_review(api, as_user, system_info, intake_db)
    referral_id, case_id = data["referral_id"], review["case_id"]

    not_claimed = await api.post(
        url(review, "complete"), json={"decision": "eligible"}, headers=songpa
    )
    assert (not_claimed.status_code, not_claimed.json()["error"]) == (409, "not-claimed")
    assert (await api.post(url(review, "claim"), headers=songpa)).status_code == 200
    wrong_shape = await api.post(url(review, "complete"), json={"reached": False}, headers=songpa)
    assert (wrong_shape.status_code, wrong_shape.json()["error"]) == (422, "invalid-request")
    no_reason = await api.post(
        url(review, "complete"), json={"decision": "ineligible"}, headers=songpa
    )
    assert (no_reason.status_code, no_reason.json()["error"]) == (422, "invalid-request")

    done = await api.post(url(review, "complete"), json={"decision": "eligible"}, headers=songpa)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "reviewed"
    assert done.json()["task"]["status"] == "done"
    assert done.json()["task"]["completed_by"] == "songpa"
    assert done.json()["task"]["result"] == {"decision": "eligible", "reason_code": None}
    closed = await api.post(url(review, "complete"), json={"decision": "eligible"}, headers=songpa)
    assert (closed.status_code, closed.json()["error"]) == (409, "task-closed")

    # The case moves on: the hospital hears the visit is scheduled.
    await until_status(updates, referral_id, "pre-discharge-visit-scheduled")
    visit = await task_in_queue(api, songpa, case_id, "pre-discharge-visit")
    assert visit["service"] == "scheduling"
    assert (await api.post(url(visit, "claim"), headers=songpa)).status_code == 200
    missed = await api.post(url(visit, "complete"), json={"reached": False}, headers=songpa)
    assert missed.status_code == 200, missed.text
    assert missed.json()["outcome"] == "contact-failed"
    assert (missed.json()["task"]["attempts"], missed.json()["task"]["status"]) == (1, "claimed")
    visited = await api.post(
        url(visit, "complete"),
        json={
            "reached": True,
            "precautions_acknowledged": True,
            "findings": ["home-safety-checked"],
            "notes": "계단 난간 설치 필요",
        },
        headers=songpa,
    )
    assert visited.status_code == 200, visited.text
    assert visited.json()["outcome"] == "visited"
    await until_status(updates, referral_id, "pre-discharge-visit-done")

    plan = await task_in_queue(api, songpa, case_id, "care-plan")
    assert (await api.post(url(plan, "claim"), headers=songpa)).status_code == 200
    # A stay over 14 days breaks a rule: refused, nothing changes.
    too_long = await api.post(
        url(plan, "complete"),
        json={"lines": [{"service": "short_term_facility", "quantity": 20}]},
        headers=songpa,
    )
    assert too_long.status_code == 422
    assert too_long.json()["error"] == "invalid-plan"
    assert "14" in too_long.json()["message"]
    unknown = await api.post(
        url(plan, "complete"), json={"lines": [{"service": "spa", "quantity": 1}]}, headers=songpa
    )
    assert (unknown.status_code, unknown.json()["error"]) == (422, "invalid-request")

    # Over the annual cap: the use case cuts the plan to what fits (a partial plan).
    cap = load_policies().for_year(2026).annual_cap_krw
    over = await api.post(
        url(plan, "complete"),
        json={"lines": [{"service": "temporary_home_care", "quantity": 200}]},
        headers=songpa,
    )
    assert over.status_code == 200, over.text
    answer = over.json()
    assert answer["outcome"] == "partial"
    assert answer["details"]["partial"] is True
    assert 0 < answer["details"]["total_krw"] <= cap
    assert answer["task"]["status"] == "done"
    lines = answer["task"]["result"]["lines"]
    assert lines[0]["service"] == "temporary_home_care"
    assert lines[0]["quantity"] < 200
    await until_status(updates, referral_id, "services-ordered")

    # Every operation is in task_audit with its actor.
    audit = await referral_db.fetch(
        "SELECT task_id, actor, action FROM task_audit"
        " WHERE task_id = ANY($1::bigint[]) AND action <> 'create' ORDER BY id",
        [review["id"], plan["id"]],
    )
    assert [(r["task_id"], r["actor"], r["action"]) for r in audit] == [
        (review["id"], "songpa", "claim"),
        (review["id"], "songpa", "complete"),
        (plan["id"], "songpa", "claim"),
        (plan["id"], "songpa", "complete"),
    ]


async def test_an_expired_lease_is_refused_until_claimed_again(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
    referral_db: asyncpg.Connection,
) -> None:
    songpa = as_user["songpa"]
    _, task = await new_review(api, as_user, system_info, intake_db)
    assert (await api.post(url(task, "claim"), headers=songpa)).status_code == 200
    # Time passes: the lease ran out (moved back in the database, not waited for).
    await referral_db.execute(
        "UPDATE tasks SET lease_until = now() - interval '1 minute' WHERE id = $1", task["id"]
    )
    late = await api.post(url(task, "complete"), json={"decision": "eligible"}, headers=songpa)
    assert (late.status_code, late.json()["error"]) == (409, "lease-expired")
    assert (await api.post(url(task, "claim"), headers=songpa)).status_code == 200
    ok = await api.post(url(task, "complete"), json={"decision": "eligible"}, headers=songpa)
    assert ok.status_code == 200


# ------------------------------------------------------------------ personal data


async def test_task_detail_shows_personal_data_and_records_the_access(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    data, task = await new_review(api, as_user, system_info, intake_db)
    case_id = task["case_id"]
    before = await intake_db.fetchval(
        "SELECT count(*) FROM access_audit WHERE case_id = $1", case_id
    )
    assert before == 0  # the queue shows no personal data and records nothing

    r = await api.get(url(task), headers=as_user["songpa"])
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["task"]["id"] == task["id"]
    assert detail["case"]["centre_id"] == "centre-songpa-gu"
    assert detail["case"]["requested_services"] == data["requested_services"]
    # Scheduling learns of the case on its own time: its facts may still be missing.
    assert detail["case"]["expected_discharge_date"] in (None, data["expected_discharge_date"])
    assert [t["kind"] for t in detail["case_tasks"]] == ["review"]
    (referral,) = detail["personal"]["referrals"]
    patient = data["patient"]
    assert referral["referral_id"] == data["referral_id"]
    assert referral["patient"]["name"] == patient["name"]
    assert referral["patient"]["birth_date"] == patient["birth_date"]
    assert referral["patient"]["phone"] == patient["phone"]
    assert referral["patient"]["address"]["street"] == patient["address"]["street"]
    assert referral["patient"]["household_size"] == patient["household_size"]
    assert (
        referral["patient"]["monthly_household_income_krw"]
        == patient["monthly_household_income_krw"]
    )
    assert referral["patient"]["lives_alone"] == patient["lives_alone"]
    assert referral["mobility"] == data["mobility"]
    assert referral["care_precautions"] == data["care_precautions"]
    assert referral["social_worker"]["name"] == data["social_worker"]["name"]
    assert referral["consent"]["given"] is True

    rows = await intake_db.fetch(
        "SELECT viewer, purpose, at FROM access_audit WHERE case_id = $1 ORDER BY id", case_id
    )
    assert [(row["viewer"], row["purpose"]) for row in rows] == [("songpa", "api-task-detail")]
    await api.get(url(task), headers=as_user["songpa-lead"])
    viewers = await intake_db.fetch(
        "SELECT viewer FROM access_audit WHERE case_id = $1 ORDER BY id", case_id
    )
    assert [v["viewer"] for v in viewers] == ["songpa", "songpa-lead"]
    # Refused views read nothing and record nothing.
    assert (await api.get(url(task), headers=as_user["gangnam"])).status_code == 404
    count = await intake_db.fetchval(
        "SELECT count(*) FROM access_audit WHERE case_id = $1", case_id
    )
    assert count == 2

    # The console logs who did what, never what they saw.
    await asyncio.sleep(0.5)
    log = (Path(system_info.logs["intake"]).parent / "console.log").read_text(encoding="utf-8")
    assert case_id in log
    for value in (patient["name"], patient["phone"], patient["address"]["street"]):
        assert value not in log
        assert json.dumps(value)[1:-1] not in log


# ------------------------------------------------------------------ live events


async def test_events_tell_the_centre_its_queue_changed(
    api: httpx.AsyncClient,
    as_user: dict[str, dict[str, str]],
    system_info: SystemInfo,
    intake_db: asyncpg.Connection,
) -> None:
    seen: list[str] = []

    async def listen(ready: asyncio.Event) -> None:
        async with api.stream("GET", "/api/events", headers=as_user["songpa"], timeout=None) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    seen.append(line.removeprefix("event: "))
                    if seen[-1] == "ready":
                        ready.set()
                    if seen[-1] == "queue-changed":
                        return

    ready = asyncio.Event()
    listener = asyncio.create_task(listen(ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        data = await refer(system_info)
        await case_of(intake_db, data["referral_id"])
        await asyncio.wait_for(listener, WAIT)
    finally:
        listener.cancel()
    assert seen[0] == "ready"
    assert seen[-1] == "queue-changed"
