"""The metrics the alert rules read, measured where the work happens, against a real
PostgreSQL: the deadline watcher's escalation counter and overdue gauge.
(The outbox gauges are covered with `carelink outbox requeue` in
test_cli_outbox_requeue.py.)

Each test uses its own service label: the registry is global to the process.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from services.lib.tasks import operations as ops
from services.lib.tasks.deadlines import escalate_overdue
from services.tools.localinfra import Endpoints
from tests.integration.test_tasks import T0, fresh_pool, new_task

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_escalations_are_counted_by_kind_and_overdue_tasks_by_priority(
    endpoints: Endpoints,
) -> None:
    service = f"svc-{uuid.uuid4().hex[:6]}"
    pool = await fresh_pool(endpoints)
    try:
        async with pool.acquire() as conn:
            late = T0 - timedelta(hours=1)
            await new_task(conn, kind="review", due_at=late)
            await new_task(conn, kind="review", due_at=late, priority="urgent")
            await new_task(conn, kind="care_plan", due_at=late)
            await new_task(conn, kind="review", due_at=T0 + timedelta(hours=1))  # not yet
            done = await new_task(conn, kind="review", due_at=late)
            await ops.claim(conn, done.id, "coord-a", now=T0)
            await ops.complete(conn, done.id, "coord-a", {}, now=T0)

            assert await escalate_overdue(conn, service=service, now=T0) == 3
            assert _value("carelink_escalations_total", service=service, kind="review") == 2
            assert _value("carelink_escalations_total", service=service, kind="care_plan") == 1
            assert _value("carelink_tasks_overdue", service=service, priority="routine") == 2
            assert _value("carelink_tasks_overdue", service=service, priority="urgent") == 1

            # Escalated once: a second scan counts no new escalation, but the tasks are
            # still overdue (that is what "piling up" means) until someone works them.
            assert await escalate_overdue(conn, service=service, now=T0) == 0
            assert _value("carelink_escalations_total", service=service, kind="review") == 2
            assert _value("carelink_tasks_overdue", service=service, priority="routine") == 2

            await conn.execute("UPDATE tasks SET status = 'done' WHERE priority = 'urgent'")
            await escalate_overdue(conn, service=service, now=T0)
            assert _value("carelink_tasks_overdue", service=service, priority="urgent") == 0
    finally:
        await asyncio.wait_for(pool.close(), 10)
