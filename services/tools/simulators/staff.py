"""Simulated care coordinators doing one step of one case at a time, through the
console's HTTP API as a coordinator would (sign in, find the task in the centre's
queue, claim it, complete it with the result its kind takes). Used by the
end-to-end tests; the staff simulator (staff_loop) works whole queues.

One signed-in coordinator per centre: a case's tasks are in its centre's queue,
which only that centre's coordinators see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any, Literal

from services.tools.simulators.accounts import Account, by_centre
from services.tools.simulators.console_client import (
    LIVE,
    Completed,
    ConsoleClient,
    Task,
    sign_in_all,
)

TaskKind = Literal["review", "care-plan", "pre-discharge-visit", "post-discharge-visit", "delivery"]
VisitKind = Literal["pre-discharge-visit", "post-discharge-visit"]


class Staff:
    def __init__(self, console: str, accounts: Sequence[Account], *, timeout: float = 15.0) -> None:
        if not accounts:
            raise ValueError("no coordinator accounts")
        self.console = console
        self._accounts = {centre: found[0] for centre, found in by_centre(accounts).items()}
        self._timeout = timeout
        self.desks: dict[str, ConsoleClient] = {}
        self._centre_of: dict[str, str] = {}
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Staff:
        clients = [
            ConsoleClient(self.console, account, timeout=self._timeout)
            for account in self._accounts.values()
        ]
        try:
            await sign_in_all(self._stack, clients)
        except BaseException:
            await self._stack.aclose()
            raise
        self.desks = {client.centre_id: client for client in clients}
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._stack.aclose()

    @property
    def centres(self) -> list[str]:
        return list(self.desks)

    def desk(self, centre_id: str) -> ConsoleClient:
        """The signed-in coordinator of a centre."""
        try:
            return self.desks[centre_id]
        except KeyError:
            raise LookupError(f"no coordinator account for {centre_id}") from None

    async def task(
        self,
        case_id: str,
        kind: TaskKind,
        *,
        status: Sequence[str] = LIVE,
        timeout: float = 30.0,
    ) -> Task:
        """Wait until the case has a task of this kind in one of these states (the newest),
        looking in the queue of every centre we have a coordinator for."""
        deadline = time.monotonic() + timeout
        while True:
            known = self._centre_of.get(case_id)
            for centre in sorted(self.desks, key=lambda c: c != known):
                found = [
                    task
                    for task in await self.desks[centre].queue(
                        kinds=[kind], statuses=status, limit=1000
                    )
                    if task.case_id == case_id
                ]
                if found:
                    self._centre_of[case_id] = centre
                    return max(found, key=lambda task: task.id)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {kind} task ({', '.join(status)}) for {case_id}")
            await asyncio.sleep(0.1)

    async def claim(self, task: Task) -> Task:
        return await self.desk(task.centre_id).claim(task)

    async def _claimed(self, case_id: str, kind: TaskKind) -> tuple[ConsoleClient, Task]:
        task = await self.claim(await self.task(case_id, kind))
        return self.desk(task.centre_id), task

    async def review(
        self,
        case_id: str,
        decision: Literal["eligible", "ineligible"] = "eligible",
        reason_code: str | None = None,
    ) -> None:
        desk, task = await self._claimed(case_id, "review")
        await desk.review(task, decision, reason_code)

    async def plan(
        self,
        case_id: str,
        lines: Sequence[tuple[str, int]] | None = None,
        *,
        providers: Mapping[str, str] | None = None,
        starts: Mapping[str, date] | None = None,
    ) -> dict[str, Any]:
        """Set the care plan; returns what referral answered (`outcome`, `total_krw`, the
        ordered `lines` …). `providers`/`starts` by service: other than the suggestion."""
        desk, task = await self._claimed(case_id, "care-plan")
        return (await desk.care_plan(task, lines, providers=providers, starts=starts)).details

    async def visit(
        self,
        case_id: str,
        kind: VisitKind,
        *,
        precautions_acknowledged: bool = True,
        findings: Sequence[str] | None = None,
        notes: str | None = None,
    ) -> Completed:
        """Record the visit: finding codes (none: the kind's usual ones) and, if given, a
        free-text note (it stays in scheduling)."""
        desk, task = await self._claimed(case_id, kind)
        return await desk.visit(
            task,
            precautions_acknowledged=precautions_acknowledged,
            findings=findings,
            notes=notes,
        )

    async def fail_contact(self, case_id: str, kind: VisitKind) -> Task:
        """One call that does not reach the person; the task as it is afterwards."""
        desk, task = await self._claimed(case_id, kind)
        done: Completed = await desk.contact_failed(task)
        return done.task

    async def deliver(self, case_id: str, how: str = "full") -> Completed | None:
        """Record every line of the case's delivery task (see ConsoleClient.deliver)."""
        desk, task = await self._claimed(case_id, "delivery")
        return await desk.deliver(task, how)

    async def delivery_task(self, case_id: str) -> tuple[ConsoleClient, Task]:
        """The case's delivery task, claimed: for recording lines one step at a time."""
        return await self._claimed(case_id, "delivery")

    async def waitlist(self, case_id: str) -> None:
        desk, task = await self._claimed(case_id, "care-plan")
        await desk.waitlist(task)

    async def could_not_deliver(self, case_id: str) -> None:
        desk, task = await self._claimed(case_id, "care-plan")
        await desk.could_not_deliver(task)

    # -- exits (issue 10) ---------------------------------------------------------

    async def cancel(
        self, case_id: str, reason_code: str, note: str | None = None, *, centre_id: str
    ) -> dict[str, Any]:
        """A coordinator of the case's centre cancels it with a reason."""
        return await self.desk(centre_id).cancel_case(case_id, reason_code, note)

    async def reopen(self, case_id: str, kind: VisitKind, note: str | None = None) -> Task:
        """Reopen the case's visit on hold as unreachable (it is nobody's while held)."""
        task = await self.task(case_id, kind, status=("suspended",))
        return await self.desk(task.centre_id).reopen(task, note)
