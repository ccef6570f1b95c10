"""The metrics the alert rules read, measured where the work happens, against a real
PostgreSQL: the deadline watcher's escalation counter and overdue gauge, and every
running service's /metrics.
(The outbox gauges are covered with `carelink outbox requeue` in
test_cli_outbox_requeue.py.)

Each test uses its own service label: the registry is global to the process.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from services.lib.tasks import operations as ops
from services.lib.tasks.deadlines import escalate_overdue
from services.tools.localinfra import Endpoints
from services.tools.stack import SystemInfo
from services.tools.stack.deployables import SERVICES
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


async def test_every_running_service_exports_what_the_alerts_read(
    system_info: SystemInfo,
) -> None:
    """Against the local system (four services on the session's servers): each /metrics
    has readiness per check, measured at the scrape, and the outbox figures from its
    database; the deadline watchers' overdue gauge is there for the task owners."""
    for service in SERVICES:
        text = await asyncio.to_thread(_scrape, system_info.metrics[service])
        for check in ("broker", "database"):
            assert f'carelink_ready{{check="{check}",service="{service}"}} 1.0' in text, service
        for gauge in ("outbox_backlog", "outbox_oldest_age_seconds", "outbox_set_aside"):
            assert re.search(rf'^carelink_{gauge}{{service="{service}"}} \d', text, re.M), (
                service,
                gauge,
            )
        if service in {"referral", "scheduling"}:
            assert f'carelink_tasks_overdue{{priority="urgent",service="{service}"}}' in text


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        body: bytes = response.read()
    return body.decode()
