"""Every status and reason code of the contract that coordinators and hospitals
drive after acceptance, end to end over the real broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts import topics
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from tests.e2e.flow import Referral

pytestmark = pytest.mark.e2e

POLICE = "police-hospital"


@pytest.fixture
async def reader(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as updates:
        yield updates


@pytest.fixture
def hospital() -> FakeHospital:
    return FakeHospital(POLICE)


def referral(reader: UpdatesReader, hospital: FakeHospital, staff: Staff, **kw: object) -> Referral:
    return Referral(reader, hospital, staff, **kw)


@pytest.mark.parametrize(
    ("code", "reason_word"),
    [
        ("can-manage-alone", "manage"),
        ("family-caregiver-available", "caregiver"),
        ("covered-by-public-care", "public"),
    ],
)
async def test_a_review_refusal_rejects_before_acceptance_with_its_code(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff, code: str, reason_word: str
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id, "ineligible", code)
    last = await r.until(code)
    assert (last.data["status"], last.data["reason_code"]) == ("rejected", code)
    assert reason_word in last.data["reason"].lower()
    assert last.data["reason_ko"]
    # Rejected before acceptance: a refusing review never accepted the referral.
    assert r.trail() == [
        ("received", "received"),
        ("received", "triaged"),
        ("rejected", code),
    ]
    r.assert_feed_legal()


async def test_patient_declining_at_review_is_cancelled_declined_by_patient(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id, "ineligible", "declined-by-patient")
    last = await r.until("declined-by-patient")
    assert (last.data["status"], last.data["reason_code"]) == ("cancelled", "declined-by-patient")
    r.assert_feed_legal()


async def test_a_patient_declining_after_acceptance_is_cancelled_never_rejected(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id)
    await r.until("reviewed")
    await r.send(hospital.cancelled(r.referral_id, "declined-by-patient"))
    last = await r.until("declined-by-patient")
    assert (last.data["status"], last.data["reason_code"]) == ("cancelled", "declined-by-patient")
    assert last.data["reason_ko"]
    statuses = [s for s, _ in r.trail()]
    assert statuses.index("accepted") < statuses.index("cancelled")
    assert "rejected" not in statuses
    r.assert_feed_legal()


@pytest.mark.parametrize(
    "reason_code",
    [
        "cancelled-by-hospital",
        "consent-withdrawn",
        "declined-by-patient",
        "deceased",
        "transferred",
    ],
)
async def test_hospital_cancellation_reason_codes_reach_the_hospital(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff, reason_code: str
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await r.send(hospital.cancelled(r.referral_id, reason_code))
    last = await r.until(reason_code)
    assert (last.data["status"], last.data["reason_code"]) == ("cancelled", reason_code)
    # Open tasks stop: the review task is cancelled.
    task = await staff.task(r.case_id, "review", status=("cancelled",))
    assert task.status == "cancelled"


@pytest.mark.parametrize(
    "stage", ["pre-discharge-visit-scheduled", "services-ordered", "post-discharge-visit-scheduled"]
)
async def test_cancellation_at_each_stage_stops_the_open_tasks(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff, stage: str
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    open_kind = "pre-discharge-visit"
    if stage != "pre-discharge-visit-scheduled":
        await staff.visit(r.case_id, "pre-discharge-visit")
        await staff.plan(r.case_id)
        await r.until("services-ordered")
        open_kind = "delivery"
    if stage == "post-discharge-visit-scheduled":
        await r.send(hospital.discharged(r.referral_id))
        await r.until("post-discharge-visit-scheduled")
        open_kind = "post-discharge-visit"
    await r.send(hospital.cancelled(r.referral_id, "transferred"))
    await r.until("transferred")
    task = await staff.task(r.case_id, open_kind, status=("cancelled",))  # type: ignore[arg-type]
    assert task.status == "cancelled"
    if open_kind != "pre-discharge-visit":  # services were ordered: delivery stops too
        delivery = await staff.task(r.case_id, "delivery", status=("cancelled",))
        assert delivery.status == "cancelled"
    r.assert_feed_legal()


async def test_cancellation_of_a_completed_case_repeats_completed(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await r.to_services_ordered()
    await r.send(hospital.discharged(r.referral_id))
    await staff.visit(r.case_id, "post-discharge-visit")
    await r.deliver()
    await r.until("closed")
    await r.send(hospital.cancelled(r.referral_id))
    last = await r.until("closed", count=2)
    assert last.data["status"] == "completed"
    assert "cancelled" not in [u.data["status"] for u in r.updates]
    r.assert_feed_legal()


async def test_discharge_postponed_beyond_the_horizon_holds_then_resumes(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff, discharge_in_days=4)
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    far = date.today() + timedelta(days=40)
    await r.send(hospital.updated(r.referral_id, expected_discharge_date=far.isoformat()))
    hold = await r.until("discharge-postponed")
    assert (hold.data["status"], hold.data["reason_code"]) == ("on-hold", "discharge-postponed")
    near = date.today() + timedelta(days=6)
    await r.send(hospital.updated(r.referral_id, expected_discharge_date=near.isoformat()))
    again = await r.until("pre-discharge-visit-scheduled", count=2)
    # The hold ends by returning to the status it left, as a step of its own.
    trail = r.trail()
    after_hold = trail[trail.index(("on-hold", "discharge-postponed")) + 1]
    assert after_hold == ("in-progress", "resumed"), trail
    window_end = datetime.fromisoformat(again.data["details"]["visit_window"]["end"])
    assert window_end.date() == near
    await staff.visit(r.case_id, "pre-discharge-visit")
    await r.until("pre-discharge-visit-done")
    r.assert_feed_legal()


async def test_a_discharge_date_moved_within_the_horizon_replans_the_visit(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff, discharge_in_days=3)
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    later = date.today() + timedelta(days=8)
    await r.send(hospital.updated(r.referral_id, expected_discharge_date=later.isoformat()))
    again = await r.until("pre-discharge-visit-scheduled", count=2)
    assert datetime.fromisoformat(again.data["details"]["visit_window"]["end"]).date() == later
    assert "on-hold" not in [u.data["status"] for u in r.updates]


async def test_readmission_holds_the_post_discharge_visit_until_the_next_discharge(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await r.to_services_ordered()
    await r.send(hospital.discharged(r.referral_id))
    await r.until("post-discharge-visit-scheduled")
    back_home = date.today() + timedelta(days=5)
    await r.send(hospital.updated(r.referral_id, expected_discharge_date=back_home.isoformat()))
    hold = await r.until("readmitted")
    assert (hold.data["status"], hold.data["reason_code"]) == ("on-hold", "readmitted")
    await staff.task(r.case_id, "post-discharge-visit", status=("suspended",))
    await r.send(hospital.discharged(r.referral_id))
    await r.until("post-discharge-visit-scheduled", count=2)
    await staff.visit(r.case_id, "post-discharge-visit")
    await r.deliver()
    await r.until("closed")
    r.assert_feed_legal()


async def test_three_failed_contact_attempts_put_the_case_on_hold_unreachable(
    system_info: SystemInfo, reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    for _ in range(3):
        task = await staff.fail_contact(r.case_id, "pre-discharge-visit")
    assert task.status == "suspended"
    hold = await r.until("unreachable")
    assert (hold.data["status"], hold.data["reason_code"]) == ("on-hold", "unreachable")
    # Reopened as a coordinator does it, through the console (tests/e2e/test_exits.py
    # checks the audit and the refusals).
    await staff.reopen(r.case_id, "pre-discharge-visit")
    await r.until("pre-discharge-visit-scheduled", count=2)


async def test_an_unreachable_person_discharged_meanwhile_misses_the_visit_and_goes_on(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    """What the simulators' `unreachable` script does: on hold as unreachable, the hospital
    discharges the patient; the visit is missed, the care plan and the post-discharge
    visit follow, and the case completes."""
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    for _ in range(3):
        task = await staff.fail_contact(r.case_id, "pre-discharge-visit")
    assert task.status == "suspended"
    await r.until("unreachable")
    await r.send(hospital.discharged(r.referral_id))
    await r.until("pre-discharge-visit-done")
    await staff.plan(r.case_id)
    await r.until("post-discharge-visit-scheduled")
    await staff.visit(r.case_id, "post-discharge-visit")
    await r.deliver()
    last = await r.until("closed")
    assert last.data["status"] == "completed"
    r.assert_feed_legal()


async def test_waitlisted_plan_holds_then_plans(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id)
    await staff.visit(r.case_id, "pre-discharge-visit")
    await staff.waitlist(r.case_id)
    hold = await r.until("waitlisted")
    assert (hold.data["status"], hold.data["reason_code"]) == ("on-hold", "waitlisted")
    await staff.plan(r.case_id)
    await r.until("services-ordered")
    r.assert_feed_legal()


async def test_services_that_cannot_be_delivered_fail_the_case(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = referral(reader, hospital, staff)
    await r.submit()
    await staff.review(r.case_id)
    await staff.visit(r.case_id, "pre-discharge-visit")
    await staff.could_not_deliver(r.case_id)
    last = await r.until("could-not-deliver")
    assert (last.data["status"], last.data["reason_code"]) == ("failed", "could-not-deliver")


async def test_annual_cap_is_shared_across_a_persons_cases_and_exhausts(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    # 2026 cap 1,800,000 KRW; 14 facility days cost 1,036,840: the second case gets a
    # partial plan, the third nothing (cap-exhausted).
    first = referral(reader, hospital, staff, services=["short_term_facility"])
    name, birth = first.data["patient"]["name"], first.data["patient"]["birth_date"]
    await first.submit()
    await first.to_services_ordered([("short_term_facility", 14)])
    await first.send(hospital.discharged(first.referral_id))
    await staff.visit(first.case_id, "post-discharge-visit")
    await first.deliver()
    await first.until("closed")

    def same_person(r: Referral) -> Referral:
        r.data["patient"] = {**r.data["patient"], "name": name, "birth_date": birth}
        return r

    second = same_person(referral(reader, hospital, staff, services=["short_term_facility"]))
    await second.submit()
    await second.to_services_ordered([("short_term_facility", 14)])
    plan = (await second.until("care-plan-set")).data["details"]["care_plan"]
    assert plan["partial"] is True
    assert plan["services"][0]["quantity"] < 14
    assert plan["publicly_paid_krw"] <= 1_800_000 - 1_036_840
    await second.send(hospital.discharged(second.referral_id))
    await staff.visit(second.case_id, "post-discharge-visit")
    await second.deliver()
    await second.until("closed")

    # 22,560 KRW remain: not even one more facility day (74,060).
    third = same_person(referral(reader, hospital, staff, services=["short_term_facility"]))
    await third.submit()
    await staff.review(third.case_id)
    await staff.visit(third.case_id, "pre-discharge-visit")
    outcome = await staff.plan(third.case_id, [("short_term_facility", 1)])
    assert outcome == {"outcome": "cap-exhausted"}
    last = await third.until("cap-exhausted")
    assert (last.data["status"], last.data["reason_code"]) == ("failed", "cap-exhausted")


async def test_same_patient_referred_by_two_hospitals_shares_one_case(
    system_info: SystemInfo, reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    other = FakeHospital("severance")
    first = referral(reader, hospital, staff)
    await first.submit()
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates("severance")) as reader2:
        second = Referral(reader2, other, staff)
        second.data["patient"] = first.data["patient"]
        await second.send(other.submitted(second.data))
        await second.until("triaged")
        assert {u.data["case_id"] for u in second.updates} == {first.case_id}
        assert second.updates[0].data["details"] == {"joined_existing_case": True}
        await staff.review(first.case_id)
        await first.until("pre-discharge-visit-scheduled")
        await second.until("pre-discharge-visit-scheduled")
        first.assert_feed_legal()
        second.assert_feed_legal()
    # Each hospital hears only under its own referral id, on its own topic.
    assert second.referral_id not in reader.by_referral
    # A referral joining once the case is accepted and in progress is brought along the
    # case's chain: a legal path to where the case stands, never received → in-progress.
    third = referral(reader, hospital, staff)
    third.data["patient"] = first.data["patient"]
    await third.send(hospital.submitted(third.data))
    await third.until("pre-discharge-visit-scheduled")
    assert third.trail() == [
        ("received", "received"),
        ("received", "triaged"),
        ("accepted", "reviewed"),
        ("in-progress", "pre-discharge-visit-scheduled"),
    ]
    assert third.updates[0].data["details"] == {"joined_existing_case": True}
    third.assert_feed_legal()


async def test_overdue_review_raises_one_escalation_and_no_hospital_update(
    system_info: SystemInfo, reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    # Submitted four days ago: the 72-hour review deadline has passed.
    r = referral(reader, hospital, staff, submitted_at=datetime.now(UTC) - timedelta(days=4))
    await r.submit()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=system_info.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [
            TopicPartition(topics.ESCALATIONS, p) for p in range(topics.ESCALATIONS_PARTITIONS)
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        found: list[dict[str, object]] = []
        for _ in range(100):
            batches = await consumer.getmany(timeout_ms=200)
            found += [
                json.loads(rec.value)
                for recs in batches.values()
                for rec in recs
                if rec.key == r.case_id.encode()
            ]
            if found:
                await asyncio.sleep(2.5)  # two more scans: it must not be raised twice
                batches = await consumer.getmany(timeout_ms=500)
                found += [
                    json.loads(rec.value)
                    for recs in batches.values()
                    for rec in recs
                    if rec.key == r.case_id.encode()
                ]
                break
    finally:
        await consumer.stop()
    assert len(found) == 1
    assert found[0]["kind"] == "review"
    assert found[0]["service"] == "referral"
    assert r.trail() == [("received", "received"), ("received", "triaged")]


async def test_follow_up_for_an_unknown_referral_goes_to_dead_letters_not_an_update(
    system_info: SystemInfo, reader: UpdatesReader, hospital: FakeHospital
) -> None:
    unknown = f"ref-{uuid.uuid4()}"
    await Referral(reader, hospital, None).send(hospital.discharged(unknown))  # type: ignore[arg-type]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=system_info.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        dlq = topics.dead_letters(topics.referrals(POLICE))
        parts = [TopicPartition(dlq, 0)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        keys: list[bytes] = []
        for _ in range(100):
            batches = await consumer.getmany(timeout_ms=200)
            keys += [rec.key for recs in batches.values() for rec in recs]
            if unknown.encode() in keys:
                break
    finally:
        await consumer.stop()
    assert unknown.encode() in keys
    assert unknown not in reader.by_referral
