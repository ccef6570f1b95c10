"""Escalations reach people (issue 10), over the real broker and PostgreSQL: a task
past its deadline is escalated on care.escalations by its service's deadline watcher,
the console (its own consumer group) pushes it to the centre's lead as a server-sent
event, the lead's overdue view counts and lists it from the task services, and the
lead hands it to a colleague from there. Coordinators do not get the lead's view."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest

from contracts import topics
from services.tools.simulators.hospital_io import UpdatesReader
from services.tools.simulators.referrals import FakeHospital
from services.tools.simulators.staff import Staff
from services.tools.stack import SystemInfo
from tests.e2e.flow import Referral

pytestmark = pytest.mark.e2e

POLICE = "police-hospital"


async def signed_in(http: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await http.post("/api/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def next_overdue(
    http: httpx.AsyncClient, headers: dict[str, str], task_id: int, ready: asyncio.Event
) -> dict[str, Any]:
    """Read the lead's event stream until the push for `task_id` arrives."""
    async with http.stream("GET", "/api/overdue/events", headers=headers) as stream:
        assert stream.status_code == 200
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if event == "ready":
                    assert data["centre_id"] == "centre-songpa-gu"
                    ready.set()
                elif event == "task-overdue" and data["task_id"] == task_id:
                    return dict(data)
    raise AssertionError("the stream ended")


async def test_an_overdue_task_reaches_the_lead_live_and_in_the_overdue_view(
    system_info: SystemInfo, staff: Staff, referral_db: asyncpg.Connection
) -> None:
    async with UpdatesReader(system_info.kafka_bootstrap, topics.updates(POLICE)) as reader:
        r = Referral(reader, FakeHospital(POLICE), staff, district="Songpa-gu")
        await r.submit()
    review = await staff.task(r.case_id, "review")

    async with httpx.AsyncClient(base_url=system_info.console, timeout=60) as http:
        lead = await signed_in(http, "songpa-lead", "lead-demo")
        coordinator = await signed_in(http, "songpa", "songpa-demo")
        refused = await http.get("/api/overdue", headers=coordinator)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")

        ready = asyncio.Event()
        pushed = asyncio.create_task(next_overdue(http, lead, review.id, ready))
        await asyncio.wait_for(ready.wait(), 30)
        # Two days past its deadline: the watcher (every second in tests) escalates it.
        await referral_db.execute(
            "UPDATE tasks SET due_at = now() - interval '2 days' WHERE id = $1", review.id
        )
        event = await asyncio.wait_for(pushed, 60)
        assert (event["service"], event["case_id"], event["kind"]) == (
            "referral",
            r.case_id,
            "review",
        )

        view = await http.get("/api/overdue", headers=lead)
        assert view.status_code == 200, view.text
        body = view.json()
        mine = [o for o in body["tasks"] if o["task"]["id"] == review.id]
        assert len(mine) == 1
        assert mine[0]["age"] == "1-3-days"
        dues = [o["task"]["due_at"] for o in body["tasks"]]
        assert dues == sorted(dues), "oldest first"
        reviews = next(k for k in body["by_kind"] if k["kind"] == "review")
        assert reviews["by_age"]["1-3-days"] >= 1
        assert body["total"] == sum(k["total"] for k in body["by_kind"])

        page = await http.get("/overdue", headers=lead)
        assert page.status_code == 200
        assert f'data-task="referral/{review.id}"' in page.text
        assert (await http.get("/overdue", headers=coordinator)).status_code == 403

        # Handed to a colleague from there, with the existing reassign.
        handed = await http.post(
            f"/api/tasks/referral/{review.id}/reassign", json={"to": "songpa"}, headers=lead
        )
        assert handed.status_code == 200, handed.text
        assert handed.json()["claimed_by"] == "songpa"
