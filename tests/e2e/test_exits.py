"""A coordinator's exits end to end (issue 10), over the real broker and PostgreSQL:
a cancellation through the console reaches the hospital as `cancelled` with the
reason in English and Korean and closes every service's work; an unreachable
case reopened through the console resumes; fee support corrected before the care
plan reaches the hospital, and is refused after it. Each is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from contracts import topics
from contracts.reasons import REASONS
from services.lib.runtime.callers import actor_headers
from services.tools.simulators.console_client import ApiError
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import LocalSystem, SystemInfo
from tests.e2e.flow import Referral

pytestmark = pytest.mark.e2e

POLICE = "police-hospital"
SONGPA = "centre-songpa-gu"


@pytest.fixture
async def reader(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as updates:
        yield updates


@pytest.fixture
def hospital() -> FakeHospital:
    return FakeHospital(POLICE)


async def test_a_coordinators_cancel_reaches_the_hospital_as_cancelled_with_its_reason(
    reader: UpdatesReader,
    hospital: FakeHospital,
    staff: Staff,
    intake_db: asyncpg.Connection,
    referral_db: asyncpg.Connection,
) -> None:
    r = Referral(reader, hospital, staff, district="Songpa-gu")
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")

    answer = await staff.cancel(r.case_id, "deceased", "가족이 알려 옴", centre_id=SONGPA)

    assert answer["cancelled_by"] == "centre"
    last = await r.until("deceased")
    assert (last.data["status"], last.data["reason_code"]) == ("cancelled", "deceased")
    assert last.data["reason"] == REASONS["deceased"].en
    assert last.data["reason_ko"] == REASONS["deceased"].ko
    r.assert_feed_legal()
    # Audited in intake: who, which reason, the note (kept there only).
    row = await intake_db.fetchrow(
        "SELECT action, reason_code, note, actor, centre_id FROM case_exits WHERE case_id = $1",
        r.case_id,
    )
    assert row is not None
    assert (row["action"], row["reason_code"], row["note"], row["centre_id"]) == (
        "cancel",
        "deceased",
        "가족이 알려 옴",
        SONGPA,
    )
    assert row["actor"].startswith("sim-")
    # Every service closed its work: the visit is cancelled, referral's case closed.
    await staff.task(r.case_id, "pre-discharge-visit", status=("cancelled",))
    assert await referral_db.fetchval("SELECT closed FROM cases WHERE case_id = $1", r.case_id)
    # A finished case cannot be cancelled again: 409 naming why.
    with pytest.raises(ApiError) as again:
        await staff.cancel(r.case_id, "transferred", centre_id=SONGPA)
    assert (again.value.status, again.value.code) == (409, "case-closed")


async def test_an_unreachable_case_reopened_through_the_console_resumes(
    system_info: SystemInfo,
    reader: UpdatesReader,
    hospital: FakeHospital,
    staff: Staff,
) -> None:
    r = Referral(reader, hospital, staff, district="Songpa-gu")
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    for _ in range(3):
        await staff.fail_contact(r.case_id, "pre-discharge-visit")
    await r.until("unreachable")

    task = await staff.reopen(r.case_id, "pre-discharge-visit", "보호자 새 번호 확인")

    assert (task.status, task.attempts) == ("open", 0)
    resumed = await r.until("resumed")
    assert resumed.data["status"] == "in-progress"
    await r.until("pre-discharge-visit-scheduled", count=2)
    r.assert_feed_legal()
    # Audited in scheduling with the hold's reason and the note.
    conn = await asyncpg.connect(system_info.databases["scheduling"])
    try:
        row = await conn.fetchrow(
            "SELECT actor, reason_code, note FROM task_audit WHERE task_id = $1"
            " AND action = 'reopen'",
            task.id,
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["reason_code"], row["note"]) == ("unreachable", "보호자 새 번호 확인")
    # Reopening what is not on hold is refused, clearly.
    with pytest.raises(ApiError) as again:
        await staff.desk(SONGPA).reopen(task)
    assert (again.value.status, again.value.code) == (409, "invalid-state")


async def test_fee_support_corrected_before_the_plan_reaches_the_hospital_and_not_after(
    system: LocalSystem,
    system_info: SystemInfo,
    reader: UpdatesReader,
    hospital: FakeHospital,
    staff: Staff,
    referral_db: asyncpg.Connection,
) -> None:
    """Through referral's own API as the console calls it for a lead (the simulated
    coordinators are not leads); the console's lead check is its own test."""
    r = Referral(reader, hospital, staff, district="Songpa-gu")
    await r.submit()
    before = r.updates[1].data["details"]["fee_support"]
    corrected = "self-pay" if before == "full" else "full"
    base = system_info.health["referral"].removesuffix("/health/ready")
    lead = actor_headers(system.console_token, "lead-kim", SONGPA, "lead")
    coordinator = actor_headers(system.console_token, "kim", SONGPA, "coordinator")
    path = f"/v1/cases/{r.case_id}/fee-support"
    body = {"fee_support": corrected, "note": "소득 자료 재확인"}
    async with httpx.AsyncClient(base_url=base, timeout=20) as referral:
        refused = await referral.post(path, json=body, headers=coordinator)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        done = await referral.post(path, json=body, headers=lead)
        assert done.status_code == 200, done.text
        step = await r.until("fee-support-corrected")
        assert step.data["status"] == "received"
        assert step.data["details"] == {"fee_support": corrected, "previous_fee_support": before}
        row = await referral_db.fetchrow(
            "SELECT previous, fee_support, note, actor FROM fee_corrections WHERE case_id = $1",
            r.case_id,
        )
        assert row is not None
        assert dict(row) == {
            "previous": before,
            "fee_support": corrected,
            "note": "소득 자료 재확인",
            "actor": "lead-kim",
        }
        await r.to_services_ordered()
        late = await referral.post(path, json={"fee_support": before, "note": "다시"}, headers=lead)
        assert (late.status_code, late.json()["error"]) == (409, "care-plan-set")
        assert "before the care plan" in late.json()["message"]
    r.assert_feed_legal()


async def test_a_do_not_contact_visit_shows_the_social_worker_first_and_no_patient_phone(
    system_info: SystemInfo, reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = Referral(reader, hospital, staff, district="Songpa-gu")
    r.data["do_not_contact"] = True
    patient_phone = r.data["patient"]["phone"]
    worker_phone = r.data["social_worker"]["phone"]
    assert patient_phone
    assert worker_phone
    await r.submit()
    await staff.review(r.case_id)
    task = await staff.task(r.case_id, "pre-discharge-visit")
    desk = staff.desk(task.centre_id)

    # The API: the contact is the social worker; the patient's phone is nowhere.
    detail = await desk.detail(task)
    assert detail["contact"]["via"] == "social-worker"
    assert detail["contact"]["phone"] == worker_phone
    assert [x["patient"]["phone"] for x in detail["personal"]["referrals"]] == [None]
    assert patient_phone not in str(detail)

    # The task page (signed in with the same session): the social worker's phone first.
    http = await desk.open()
    page = await http.get(
        f"/tasks/scheduling/{task.id}", headers={"Authorization": f"Bearer {desk._token}"}
    )
    assert page.status_code == 200, page.text
    html = page.text
    assert patient_phone not in html
    assert 'data-testid="contact-via-social-worker"' in html
    assert html.index(worker_phone) < html.index('data-testid="patient-name"')
    assert "Through the social worker" in html

    # A review of the same case still shows what intake holds (nobody is phoned from it).
    review = await staff.task(r.case_id, "review", status=("done",))
    assert (await desk.detail(review))["contact"] is None
