"""The visit tasks' deadlines follow the case's policy year (issue 10): scheduling reads
`deadlines.pre-discharge-visit` and `deadlines.post-discharge-visit` from the policy
file intake chose, not from its code. Real PostgreSQL, scheduling's own migrations; a
policy directory whose 2025 rules differ from the programme's, so a due time taken
from the code's defaults would fail."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.hospital_v1 import ServiceCode
from contracts.intake import CaseAccepted, CaseDischarged
from contracts.referral import ReviewCompleted, ServicesLinked
from contracts.topics import CASES
from services.lib.policy import SEOUL_TZ, load_policies
from services.lib.policy.policy import DEFAULT_POLICY_DIR
from services.lib.runtime import db
from services.lib.runtime.pipeline import Record
from services.lib.tasks import MIGRATIONS as TASKS_MIGRATIONS
from services.lib.tasks import operations as tasks
from services.scheduling import usecases as scheduling
from services.tools.localinfra import Endpoints, ensure_databases

MIGRATIONS = Path(__file__).parents[2] / "services" / "scheduling" / "migrations"


@pytest.fixture
async def pool(endpoints: Endpoints) -> AsyncIterator[asyncpg.Pool]:
    name = f"vd_scheduling_{uuid.uuid4().hex[:8]}"
    url = (await ensure_databases(endpoints.postgres_url, [name]))[name]
    conn = await asyncpg.connect(url)
    try:
        await db.init_connection(conn)
        await db.migrate(
            conn,
            db.load_migrations(
                [
                    ("runtime", db.RUNTIME_MIGRATIONS),
                    ("tasks", TASKS_MIGRATIONS),
                    ("scheduling", MIGRATIONS),
                ]
            ),
        )
    finally:
        await conn.close()
    created = await db.create_pool(url, min_size=1, max_size=2)
    try:
        yield created
    finally:
        await asyncio.wait_for(created.close(), 10)


def _policies_with_other_visit_rules(directory: Path) -> Path:
    """The shipped policies, 2025's visit rules changed: the pre-discharge visit due two
    days before the discharge day, the post-discharge visit within 48 clock hours."""
    shutil.copytree(DEFAULT_POLICY_DIR, directory)
    path = directory / "2025.yaml"
    text = path.read_text(encoding="utf-8")
    pre = "    from: the expected discharge date\n    days_before: 0"
    post = "  post-discharge-visit:\n    from: the actual discharge (discharged_at)\n"
    post += "    routine: {hours: 72, counting: calendar}"
    assert pre in text
    assert post in text
    text = text.replace(pre, pre.replace("days_before: 0", "days_before: 2"))
    text = text.replace(post, post.replace("hours: 72", "hours: 48"))
    path.write_text(text, "utf-8")
    return directory


def _record(event: CaseEvent) -> Record:
    envelope = Envelope.new(source="test", type=event.ce_type, subject=event.case_id)
    return Record(
        topic=CASES,
        partition=0,
        offset=0,
        key=event.case_id.encode(),
        value=event.model_dump_json().encode(),
        headers=tuple(envelope.to_headers()),
    )


async def test_the_visits_are_due_as_the_cases_policy_year_says(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    policies = load_policies(_policies_with_other_visit_rules(tmp_path / "policy"))
    handler = scheduling.CaseEvents(horizon_days=14, policies=policies).handler()
    case_id = f"case-{uuid.uuid4().hex[:12]}"
    ids: dict[str, Any] = {
        "case_id": case_id,
        "hospital_id": "severance",
        "referral_id": f"ref-{case_id}",
        "occurred_at": datetime.now(UTC),
    }
    expected = datetime.now(SEOUL_TZ).date() + timedelta(days=5)
    discharged_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    events: list[CaseEvent] = [
        CaseAccepted(
            **ids,
            person_id=f"person-{case_id}",
            policy_year=2025,
            fee_support="full",
            centre_id="centre-songpa",
            district="Songpa-gu",
            priority="routine",
            review_deadline=datetime.now(UTC) + timedelta(hours=72),
            expected_discharge_date=expected,
            requested_services=[ServiceCode("meal_delivery")],
        ),
        ReviewCompleted(**ids, decision="eligible"),
    ]
    for event in events:
        async with pool.acquire() as conn, conn.transaction():
            await handler(conn, _record(event))
    async with pool.acquire() as conn:
        (pre,) = [t for t in await tasks.for_case(conn, case_id) if t.status == "open"]
    assert pre.kind == "pre-discharge-visit"
    two_days_before: date = expected - timedelta(days=2)
    assert pre.due_at == datetime.combine(two_days_before, time.min, tzinfo=SEOUL_TZ)

    for event in (CaseDischarged(**ids, discharged_at=discharged_at), ServicesLinked(**ids)):
        async with pool.acquire() as conn, conn.transaction():
            await handler(conn, _record(event))
    async with pool.acquire() as conn:
        (post,) = [t for t in await tasks.for_case(conn, case_id) if t.status == "open"]
    assert post.kind == "post-discharge-visit"
    assert post.due_at == discharged_at + timedelta(hours=48)
