"""The whole loop through the local stack's FHIR gateway (issue 14): an EHR posts a Task, the
coordinators work the case through the console's API, the EHR says the patient left
with a PUT of the Task, and the Task ends `completed` with its output: every service
as delivered with its units and cost, and the outcome report."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.task import Task

from contracts import topics
from services.fhirgateway import codes, mapping
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from services.tools.stack.fhirclient import access_token
from tests.e2e.flow import Referral
from tests.fhir_builders import as_json, referral_task
from tests.integration.runtime_helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

POLICE = "police-hospital"


@pytest.fixture
async def ehr(system_info: SystemInfo) -> AsyncIterator[httpx.AsyncClient]:
    """The local stack's FHIR gateway, as its local EHR client (police-hospital) calls it."""
    client = system_info.fhir_client
    token = await asyncio.to_thread(
        access_token, system_info.fhir, client["client_id"], client["kid"], Path(client["key_file"])
    )
    async with httpx.AsyncClient(
        base_url=system_info.fhir, timeout=20, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        yield http


@pytest.fixture
async def reader(system_info: SystemInfo) -> AsyncIterator[UpdatesReader]:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as updates:
        yield updates


async def test_a_fhir_task_goes_round_the_loop_to_completed_with_its_output(
    ehr: httpx.AsyncClient, reader: UpdatesReader, staff: Staff
) -> None:
    r = Referral(
        reader,
        FakeHospital(POLICE),
        staff,
        referral_id=f"FHIR-{uuid.uuid4().hex[:12]}",
        services=["temporary_home_care", "meal_delivery"],
    )
    created = await ehr.post("/Task", json=as_json(referral_task(r.data)))
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    await r.until("triaged")
    r.case_id = r.updates[0].data["case_id"]
    await staff.review(r.case_id)
    await r.until("pre-discharge-visit-scheduled")
    await staff.visit(r.case_id, "pre-discharge-visit")
    plan = await staff.plan(r.case_id, [("temporary_home_care", 8), ("meal_delivery", 10)])
    assert plan["outcome"] == "plan", plan
    await r.until("services-ordered")

    # The EHR says the patient left: a PUT of the Task with discharged-at.
    task = await read(ehr, task_id)
    assert (task["status"], task["businessStatus"]["coding"][0]["code"]) == (
        "in-progress",
        "services-ordered",
    )
    task["input"].append(
        {
            "type": {"coding": [{"system": codes.INPUT_SYSTEM, "code": "discharged-at"}]},
            "valueDateTime": r.updates[-1].data["occurred_at"],
        }
    )
    put = await ehr.put(f"/Task/{task_id}", json=task)
    assert put.status_code == 200, put.text
    await r.until("post-discharge-visit-scheduled")
    await staff.visit(r.case_id, "post-discharge-visit")
    assert await staff.deliver(r.case_id, "full") is not None
    closed = await r.until("closed")

    async def completed() -> bool:
        return (await read(ehr, task_id))["status"] == "completed"

    await wait_until(completed, timeout=30, interval=0.3, what="the Task completed")
    task = await read(ehr, task_id)
    Task.model_validate(task)
    assert task["businessStatus"]["coding"][0]["code"] == "closed"
    assert task["meta"]["versionId"] == str(len({u.data["sequence"] for u in r.updates}) + 2)
    report = closed.data["details"]["outcome_report"]
    assert mapping.report_from_outputs(task) == report
    delivered = {
        o["type"]["coding"][-1]["code"]: o["valueQuantity"]["value"]
        for o in task["output"]
        if "service-delivered" in {c["code"] for c in o["type"]["coding"]}
    }
    assert delivered == {"temporary_home_care": 8, "meal_delivery": 10}
    costs = [o["valueMoney"]["value"] for o in task["output"] if o["type"]["text"] == "total-cost"]
    assert costs == [report["total_krw"]]
    r.assert_feed_legal()


async def read(ehr: httpx.AsyncClient, task_id: str) -> dict[str, Any]:
    answer = await ehr.get(f"/Task/{task_id}")
    assert answer.status_code == 200, answer.text
    task: dict[str, Any] = answer.json()
    return task
