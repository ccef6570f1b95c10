"""Services ordered from providers and delivered, end to end over the real broker and
PostgreSQL: the hospital hears `services-ordered` (provider and planned start per
service), `services-started`, `services-delivered`, and `completed`/`closed` with the
outcome report built from what was delivered once the post-discharge visit is done too;
nothing delivered ends `failed`/`could-not-deliver`; the annual cap counts what was
delivered; a coordinator may order from another provider than the suggested one, which
then reports through its own credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from contracts import topics
from services.lib.policy import load_policies, seoul_date
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import LocalSystem, SystemInfo
from tests.e2e.flow import Referral

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

POLICE = "police-hospital"
POLICY = load_policies().for_date(seoul_date(datetime.now(UTC)))
PRICE: dict[str, int] = {
    str(code): service.price_krw or 0 for code, service in POLICY.services.items()
}
SUGGESTED_HOME_CARE = "demo-homecare-southeast"
OTHER_HOME_CARE = "demo-songpa-neighbours"


@pytest.fixture
async def reader(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as updates:
        yield updates


@pytest.fixture
def hospital() -> FakeHospital:
    return FakeHospital(POLICE)


@pytest.fixture
async def referral_api(system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    base = system_info.health["referral"].removesuffix("/health/ready")
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        yield client


def as_provider(system: LocalSystem, provider_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {system.provider_tokens[provider_id]}"}


async def ordered(r: Referral, staff: Staff, lines: list[tuple[str, int]], **choices: Any) -> Any:
    """Review, pre-discharge visit, the plan: until the hospital hears `services-ordered`."""
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    await staff.visit(r.case_id, "pre-discharge-visit")
    answer = await staff.plan(r.case_id, lines, **choices)
    assert answer["outcome"] == "plan", answer
    return await r.until("services-ordered")


async def home_and_visited(r: Referral, staff: Staff, hospital: FakeHospital) -> None:
    await r.send(hospital.discharged(r.referral_id))
    await r.until("post-discharge-visit-scheduled")
    await staff.visit(r.case_id, "post-discharge-visit")
    await r.until("post-discharge-visit-done")


def business(r: Referral) -> list[str]:
    return [b for _, b in r.trail()]


async def test_fully_delivered_completes_with_the_report_from_delivery(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = Referral(reader, hospital, staff, services=["temporary_home_care", "meal_delivery"])
    await r.submit()
    update = await ordered(r, staff, [("temporary_home_care", 8), ("meal_delivery", 10)])
    # Ordered with the plan, each service with its provider and planned start.
    services = update.data["details"]["services"]
    assert [(s["line"], s["service"], s["quantity"]) for s in services] == [
        (1, "temporary_home_care", 8),
        (2, "meal_delivery", 10),
    ]
    assert services[0]["provider"]["id"] == SUGGESTED_HOME_CARE
    assert services[1]["provider"]["id"] == "demo-lunchbox"
    assert services[0]["provider"]["name"]["ko"].startswith("가상")
    assert services[0]["planned_start"] == r.data["expected_discharge_date"]
    assert "services-linked" not in business(r)

    # The visit alone does not close the case any more: delivery is still open.
    await home_and_visited(r, staff, hospital)
    assert "closed" not in business(r)

    done = await staff.deliver(r.case_id, "full")
    assert done is not None
    assert done.outcome == "delivered"
    started = await r.until("services-started")
    assert started.data["details"]["first_service"]["service"] == "temporary_home_care"
    delivered = await r.until("services-delivered")
    assert delivered.data["status"] == "in-progress"
    closed = await r.until("closed")
    assert closed.data["status"] == "completed"
    report = closed.data["details"]["outcome_report"]
    lines = report["services_delivered"]
    today = seoul_date(datetime.now(UTC)).isoformat()
    for line, (service, units) in zip(
        lines, [("temporary_home_care", 8), ("meal_delivery", 10)], strict=True
    ):
        assert (line["service"], line["quantity"], line["delivered_units"]) == (
            service,
            units,
            units,
        )
        assert (line["outcome"], line["end_reason"]) == ("delivered", None)
        assert (line["started_on"], line["ended_on"]) == (today, today)
        assert line["cost_krw"] == units * PRICE[service]
        assert (line["district_paid_krw"], line["self_paid_krw"]) == (line["cost_krw"], 0)
        assert line["provider"]["id"]
    total = 8 * PRICE["temporary_home_care"] + 10 * PRICE["meal_delivery"]
    assert (report["total_krw"], report["publicly_paid_krw"], report["self_paid_krw"]) == (
        total,
        total,
        0,
    )
    assert report["care_precautions_acknowledged"] is True
    assert report["follow_up_advice"]
    steps = business(r)
    assert steps.count("services-started") == 1
    assert steps[-2:] == ["services-delivered", "closed"]
    assert steps.index("services-ordered") < steps.index("services-started")
    r.assert_feed_legal()


async def test_partly_delivered_lines_carry_their_reason_and_what_they_cost(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = Referral(reader, hospital, staff, services=["meal_delivery", "accompaniment"])
    await r.submit()
    await ordered(r, staff, [("meal_delivery", 10), ("accompaniment", 2)])
    # Delivery first, step by step on the delivery task; the visit afterwards.
    desk, task = await staff.delivery_task(r.case_id)
    today = seoul_date(datetime.now(UTC))
    step = await desk.record_line(task, 1, started_on=today)
    assert step.outcome == "line-started"
    await r.until("services-started")
    step = await desk.record_line(
        task, 1, ended_on=today, delivered_units=4, end_reason="moved-to-facility"
    )
    assert step.outcome == "line-ended"
    step = await desk.record_line(task, 2, started_on=today, ended_on=today, delivered_units=2)
    assert step.outcome == "delivered"
    assert step.task.status == "done"
    await r.until("services-delivered")
    assert "closed" not in business(r), "the post-discharge visit is still to come"

    await home_and_visited(r, staff, hospital)
    closed = await r.until("closed")
    meals, walk = closed.data["details"]["outcome_report"]["services_delivered"]
    assert (meals["quantity"], meals["delivered_units"], meals["outcome"]) == (
        10,
        4,
        "partly-delivered",
    )
    assert meals["end_reason"] == "moved-to-facility"
    assert meals["cost_krw"] == 4 * PRICE["meal_delivery"]
    assert (walk["delivered_units"], walk["outcome"]) == (2, "delivered")
    report = closed.data["details"]["outcome_report"]
    assert report["total_krw"] == 4 * PRICE["meal_delivery"] + 2 * PRICE["accompaniment"]
    assert business(r).count("services-started") == 1
    r.assert_feed_legal()


async def test_nothing_delivered_fails_could_not_deliver(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    r = Referral(reader, hospital, staff, services=["home_repair", "meal_delivery"])
    await r.submit()
    await ordered(r, staff, [("home_repair", 2), ("meal_delivery", 10)])
    done = await staff.deliver(r.case_id, "none")
    assert done is not None
    assert done.outcome == "could-not-deliver"
    failed = await r.until("could-not-deliver")
    assert (failed.data["status"], failed.data["reason_code"]) == ("failed", "could-not-deliver")
    assert failed.data["reason_ko"]
    lines = failed.data["details"]["services"]
    assert [(x["outcome"], x["end_reason"], x["cost_krw"]) for x in lines] == [
        ("not-delivered", "provider-could-not-staff", 0),
        ("not-delivered", "provider-could-not-staff", 0),
    ]
    assert "services-started" not in business(r)
    assert "services-delivered" not in business(r)
    r.assert_feed_legal()


async def test_the_annual_cap_counts_what_was_delivered(
    reader: UpdatesReader, hospital: FakeHospital, staff: Staff
) -> None:
    # Cap 1,800,000 KRW; a facility day 74,060 (2026). The first stay of 14 days is cut
    # short after 10: it holds 740,600 of the cap, not the 1,036,840 planned.
    day = PRICE["short_term_facility"]
    cap = POLICY.annual_cap_krw
    first = Referral(reader, hospital, staff, services=["short_term_facility"])
    name, birth = first.data["patient"]["name"], first.data["patient"]["birth_date"]
    await first.submit()
    await ordered(first, staff, [("short_term_facility", 14)])
    desk, task = await staff.delivery_task(first.case_id)
    today = seoul_date(datetime.now(UTC))
    await desk.record_line(
        task, 1, started_on=today, ended_on=today, delivered_units=10, end_reason="refused"
    )
    delivered = (await first.until("services-delivered")).data["details"]["delivery"]
    assert delivered["cap_remaining_krw"] == cap - 10 * day
    await home_and_visited(first, staff, hospital)
    await first.until("closed")

    def same_person(r: Referral) -> Referral:
        r.data["patient"] = {**r.data["patient"], "name": name, "birth_date": birth}
        return r

    # The whole second stay fits: counting the first plan instead of its delivery, only
    # 10 days would.
    second = same_person(Referral(reader, hospital, staff, services=["short_term_facility"]))
    await second.submit()
    await ordered(second, staff, [("short_term_facility", 14)])
    plan = (await second.until("care-plan-set")).data["details"]["care_plan"]
    assert plan["partial"] is False
    assert plan["services"][0]["quantity"] == 14
    await staff.deliver(second.case_id, "full")
    delivered = (await second.until("services-delivered")).data["details"]["delivery"]
    assert delivered["cap_remaining_krw"] == cap - 24 * day  # 22,560 KRW
    await home_and_visited(second, staff, hospital)
    await second.until("closed")

    # What is left is less than a day: the cap is reached by what was delivered.
    third = same_person(Referral(reader, hospital, staff, services=["short_term_facility"]))
    await third.submit()
    await staff.review(third.case_id)
    await staff.visit(third.case_id, "pre-discharge-visit")
    outcome = await staff.plan(third.case_id, [("short_term_facility", 1)])
    assert outcome == {"outcome": "cap-exhausted"}
    last = await third.until("cap-exhausted")
    assert (last.data["status"], last.data["details"]["cap_remaining_krw"]) == (
        "failed",
        cap - 24 * day,
    )
    for r in (first, second, third):
        r.assert_feed_legal()


async def test_a_provider_other_than_the_suggested_one_is_ordered_and_reports_itself(
    system: LocalSystem,
    reader: UpdatesReader,
    hospital: FakeHospital,
    staff: Staff,
    referral_api: httpx.AsyncClient,
) -> None:
    r = Referral(reader, hospital, staff, services=["temporary_home_care"])
    await r.submit()
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    await staff.visit(r.case_id, "pre-discharge-visit")
    # The care-plan form suggests the first contracted provider; the coordinator changes it.
    plan_task = await staff.task(r.case_id, "care-plan")
    facts = (await staff.desk(plan_task.centre_id).detail(plan_task))["case"]
    options = [p["id"] for p in facts["providers"]["temporary_home_care"]]
    assert options[0] == SUGGESTED_HOME_CARE
    assert OTHER_HOME_CARE in options
    answer = await staff.plan(
        r.case_id, [("temporary_home_care", 8)], providers={"temporary_home_care": OTHER_HOME_CARE}
    )
    assert answer["lines"][0]["provider"]["id"] == OTHER_HOME_CARE
    update = await r.until("services-ordered")
    assert update.data["details"]["services"][0]["provider"]["id"] == OTHER_HOME_CARE

    # The chosen provider sees the line; the suggested one does not (404, as if absent).
    mine = await referral_api.get(
        "/v1/provider/lines", headers=as_provider(system, OTHER_HOME_CARE)
    )
    assert mine.status_code == 200, mine.text
    line = next(x for x in mine.json()["lines"] if x["case_id"] == r.case_id)
    assert (line["status"], line["quantity"]) == ("ordered", 8)
    other = await referral_api.get(
        f"/v1/provider/lines/{line['id']}", headers=as_provider(system, SUGGESTED_HOME_CARE)
    )
    assert other.status_code == 404, other.text
    theirs = await referral_api.get(
        "/v1/provider/lines", headers=as_provider(system, SUGGESTED_HOME_CARE)
    )
    assert all(x["case_id"] != r.case_id for x in theirs.json()["lines"])

    # The provider reports the whole delivery itself; the visit closes the case.
    today = seoul_date(datetime.now(UTC)).isoformat()
    started = await referral_api.post(
        f"/v1/provider/lines/{line['id']}/report",
        headers=as_provider(system, OTHER_HOME_CARE),
        json={"started_on": today},
    )
    assert (started.status_code, started.json()["outcome"]) == (200, "line-started"), started.text
    ended = await referral_api.post(
        f"/v1/provider/lines/{line['id']}/report",
        headers=as_provider(system, OTHER_HOME_CARE),
        json={"ended_on": today, "delivered_units": 8},
    )
    assert (ended.status_code, ended.json()["outcome"]) == (200, "delivered"), ended.text
    await r.until("services-delivered")
    # The delivery task was completed by the provider's report.
    done = await staff.task(r.case_id, "delivery", status=("done",))
    assert done.status == "done"
    await home_and_visited(r, staff, hospital)
    closed = await r.until("closed")
    (reported,) = closed.data["details"]["outcome_report"]["services_delivered"]
    assert reported["provider"]["id"] == OTHER_HOME_CARE
    assert reported["delivered_units"] == 8
    r.assert_feed_legal()
