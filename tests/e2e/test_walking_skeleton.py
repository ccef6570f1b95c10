"""One referral travels the whole loop over the real broker and PostgreSQL.

The hospital side is raw aiokafka with CloudEvents headers and key = referral id,
exactly as a hospital integration would publish; coordinators work the tasks
through the console's API (the review, visits, the plan, each line's delivery).
"""

from __future__ import annotations

import pytest

from contracts import topics
from services.tools.simulators.hospital_io import UpdatesReader, publish
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from tests.e2e.feeds import assert_feed_legal

pytestmark = pytest.mark.e2e

HOSPITAL = "police-hospital"
LOOP = [
    ("received", "received"),
    ("received", "triaged"),
    ("accepted", "reviewed"),
    ("in-progress", "pre-discharge-visit-scheduled"),
    ("in-progress", "pre-discharge-visit-done"),
    ("in-progress", "care-plan-set"),
    ("in-progress", "services-ordered"),
    ("in-progress", "post-discharge-visit-scheduled"),
    ("in-progress", "post-discharge-visit-done"),
    ("in-progress", "services-started"),
    ("in-progress", "services-delivered"),
    ("completed", "closed"),
]


def _reached(referral_id: str, business_status: str):  # type: ignore[no-untyped-def]
    return lambda seen: any(u.data["business_status"] == business_status for u in seen[referral_id])


async def test_submitted_referral_reaches_completed_on_a_legal_gap_free_feed(
    system_info: SystemInfo, staff: Staff
) -> None:
    hospital = FakeHospital(HOSPITAL)
    submission = hospital.submission(age=71, district="Songpa-gu")
    referral_id = submission["referral_id"]
    bootstrap = system_info.kafka_bootstrap

    async with UpdatesReader(bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(bootstrap, [hospital.submitted(submission)])
        seen = await reader.wait_for(_reached(referral_id, "triaged"), timeout=30)
        case_id = seen[referral_id][0].data["case_id"]

        await staff.review(case_id, "eligible")
        await reader.wait_for(_reached(referral_id, "pre-discharge-visit-scheduled"), timeout=30)
        await staff.visit(case_id, "pre-discharge-visit")
        await staff.plan(case_id)
        await reader.wait_for(_reached(referral_id, "services-ordered"), timeout=30)
        await publish(bootstrap, [hospital.discharged(referral_id)])
        await staff.visit(case_id, "post-discharge-visit")
        await reader.wait_for(_reached(referral_id, "post-discharge-visit-done"), timeout=30)
        # The case completes once every service ordered has been delivered too.
        await staff.deliver(case_id)
        seen = await reader.wait_for(_reached(referral_id, "closed"), timeout=30)

    updates = seen[referral_id]
    assert_feed_legal(updates)
    assert [(u.data["status"], u.data["business_status"]) for u in updates] == LOOP
    assert {u.data["case_id"] for u in updates} == {case_id}
    assert all(u.key == referral_id for u in updates)
    assert all(u.headers["ce_type"] == "carelink.referral.status-changed.v1" for u in updates)
    assert updates[1].data["details"]["fee_support"] == "full"
    assert updates[1].data["details"]["centre_id"] == "centre-songpa-gu"
    report = updates[-1].data["details"]["outcome_report"]
    assert report["total_krw"] > 0
    assert report["paid_by"] == "district"
    assert report["care_precautions_acknowledged"] is True
    assert {line["service"] for line in report["services_delivered"]} == {
        "temporary_home_care",
        "meal_delivery",
    }
