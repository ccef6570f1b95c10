"""Simulated care coordinators: they work the tasks through the same use cases
the coordinators' interface calls (claim, then complete), so the loop closes
without people. Used by the end-to-end tests and the staff simulator."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import asyncpg

from services.lib.policy import PolicyBook, load_policies
from services.lib.runtime.db import create_pool
from services.lib.runtime.settings import REPO_ROOT
from services.lib.tasks import operations as tasks
from services.referral.usecases import CARE_PLAN, REVIEW
from services.referral.usecases import Coordinator as ReferralDesk
from services.scheduling.domain import POST_DISCHARGE, PRE_DISCHARGE
from services.scheduling.usecases import Coordinator as VisitDesk

TaskKind = Literal["review", "care-plan", "pre-discharge-visit", "post-discharge-visit"]
REFERRAL_KINDS = {REVIEW, CARE_PLAN}
VISIT_KINDS = {PRE_DISCHARGE, POST_DISCHARGE}


class Staff:
    def __init__(
        self,
        *,
        referral_db: str,
        scheduling_db: str,
        actor: str = "sim-coordinator",
        policies: PolicyBook | None = None,
        max_contact_attempts: int = 3,
    ) -> None:
        self.actor = actor
        self._urls = {"referral": referral_db, "scheduling": scheduling_db}
        self._policies = policies or load_policies(REPO_ROOT / "deploy" / "config" / "policy")
        self._max_attempts = max_contact_attempts
        self.pools: dict[str, asyncpg.Pool] = {}

    async def __aenter__(self) -> Staff:
        for name, url in self._urls.items():
            self.pools[name] = await create_pool(url, min_size=1, max_size=4)
        self.referral = ReferralDesk(self.pools["referral"], self._policies)
        self.visits = VisitDesk(self.pools["scheduling"], max_contact_attempts=self._max_attempts)
        return self

    async def __aexit__(self, *_: object) -> None:
        for pool in self.pools.values():
            await pool.close()

    def _pool(self, kind: str) -> asyncpg.Pool:
        return self.pools["referral" if kind in REFERRAL_KINDS else "scheduling"]

    async def task(
        self,
        case_id: str,
        kind: TaskKind,
        *,
        status: Sequence[str] = ("open", "claimed"),
        timeout: float = 30.0,
    ) -> tasks.Task:
        """Wait until the case has a task of this kind in one of these states."""
        deadline = time.monotonic() + timeout
        while True:
            async with self._pool(kind).acquire() as conn:
                for task in reversed(await tasks.for_case(conn, case_id)):
                    if task.kind == kind and task.status in status:
                        return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} task ({', '.join(status)}) for {case_id}")
            await asyncio.sleep(0.1)

    async def claim(self, task: tasks.Task) -> tasks.Task:
        async with self._pool(task.kind).acquire() as conn, conn.transaction():
            return await tasks.claim(conn, task.id, self.actor, now=datetime.now(UTC))

    async def review(
        self,
        case_id: str,
        decision: Literal["eligible", "ineligible"] = "eligible",
        reason_code: str | None = None,
    ) -> None:
        task = await self.claim(await self.task(case_id, "review"))
        await self.referral.complete_review(
            task.id, self.actor, decision=decision, reason_code=reason_code
        )

    async def plan(
        self, case_id: str, lines: Sequence[tuple[str, int]] | None = None
    ) -> dict[str, object]:
        task = await self.claim(await self.task(case_id, "care-plan"))
        return await self.referral.set_care_plan(task.id, self.actor, lines=lines)

    async def visit(
        self,
        case_id: str,
        kind: Literal["pre-discharge-visit", "post-discharge-visit"],
        *,
        precautions_acknowledged: bool = True,
    ) -> None:
        task = await self.claim(await self.task(case_id, kind))
        await self.visits.complete_visit(
            task.id,
            self.actor,
            precautions_acknowledged=precautions_acknowledged,
            findings=["home-safety-checked"],
        )

    async def fail_contact(
        self, case_id: str, kind: Literal["pre-discharge-visit", "post-discharge-visit"]
    ) -> tasks.Task:
        task = await self.claim(await self.task(case_id, kind))
        return await self.visits.contact_failed(task.id, self.actor)

    async def waitlist(self, case_id: str) -> None:
        task = await self.claim(await self.task(case_id, "care-plan"))
        await self.referral.waitlist(task.id, self.actor)

    async def could_not_deliver(self, case_id: str) -> None:
        task = await self.claim(await self.task(case_id, "care-plan"))
        await self.referral.could_not_deliver(task.id, self.actor)
