"""One referral travels the whole loop over the real broker and PostgreSQL.

The hospital side is raw aiokafka with CloudEvents headers and key = referral id,
exactly as a hospital integration would publish.
"""

from __future__ import annotations

import pytest

from contracts import topics
from services.simulators.hospital_io import UpdatesReader, publish
from services.simulators.referrals import FakeHospital
from services.stack import SystemInfo

pytestmark = pytest.mark.e2e

HOSPITAL = "police-hospital"
LOOP = [
    ("received", "received"),
    ("accepted", "triaged"),
    ("in-progress", "pre-discharge-visit-scheduled"),
    ("in-progress", "pre-discharge-visit-done"),
    ("in-progress", "care-plan-set"),
    ("in-progress", "services-linked"),
    ("in-progress", "post-discharge-visit-scheduled"),
    ("in-progress", "post-discharge-visit-done"),
    ("completed", "closed"),
]


async def test_submitted_referral_reaches_completed_with_gap_free_sequence(
    system_info: SystemInfo,
) -> None:
    hospital = FakeHospital(HOSPITAL)
    submission = hospital.submission(age=71, district="Songpa-gu")
    referral_id = submission["referral_id"]

    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(HOSPITAL)) as reader:
        await publish(system_info.kafka_bootstrap, [hospital.submitted(submission)])
        await reader.wait_for(
            lambda seen: any(
                u.data["business_status"] == "services-linked" for u in seen[referral_id]
            ),
            timeout=60,
        )
        await publish(system_info.kafka_bootstrap, [hospital.discharged(referral_id)])
        seen = await reader.wait_for(
            lambda seen: any(u.data["status"] == "completed" for u in seen[referral_id]),
            timeout=60,
        )

    updates = seen[referral_id]
    assert [u.data["sequence"] for u in updates] == list(range(1, len(updates) + 1))
    assert [(u.data["status"], u.data["business_status"]) for u in updates] == LOOP
    assert len({u.data["case_id"] for u in updates}) == 1
    assert all(u.key == referral_id for u in updates)
    assert all(u.headers["ce_type"] == "carelink.referral.status-changed.v1" for u in updates)
    assert updates[1].data["details"]["fee_support"] == "full"
    report = updates[-1].data["details"]["outcome_report"]
    assert report["total_krw"] > 0
    assert {line["service"] for line in report["services_delivered"]} == {
        "temporary_home_care",
        "meal_delivery",
    }
