"""Referral's use cases: review tasks and care plans as case events arrive."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts.intake import CaseAccepted, CaseCancelled
from contracts.referral import CarePlanSet, ServicesLinked
from contracts.scheduling import VisitDone
from services.policy import PolicyBook
from services.referral import domain, store
from services.runtime.events import CaseEventRouter, emit
from services.runtime.logging import get_logger
from services.runtime.pipeline import Handler, Record

log = get_logger(__name__)
SERVICE = "referral"


class Referral:
    def __init__(self, *, policies: PolicyBook, auto_complete: bool) -> None:
        self._policies = policies
        # Until coordinators work the queue, the walking skeleton completes tasks at once.
        self._auto = auto_complete

    def handler(self) -> Handler:
        return CaseEventRouter(
            {
                CaseAccepted: self._accepted,
                VisitDone: self._visit_done,
                CaseCancelled: self._cancelled,
            }
        )

    async def _accepted(self, conn: asyncpg.Connection, record: Record, ev: CaseAccepted) -> None:
        added = await store.add_case(
            conn,
            case_id=ev.case_id,
            hospital_id=ev.hospital_id,
            referral_id=ev.referral_id,
            person_id=ev.person_id,
            centre_id=ev.centre_id,
            policy_year=ev.policy_year,
            fee_support=ev.fee_support,
            priority=ev.priority,
            requested_services=[str(s) for s in ev.requested_services],
        )
        if not added:
            return
        task_id = await store.add_task(
            conn,
            case_id=ev.case_id,
            kind="review",
            centre_id=ev.centre_id,
            priority=ev.priority,
            due_at=ev.review_deadline,
        )
        if self._auto and task_id is not None:
            await store.complete_task(conn, task_id, {"decision": "eligible", "by": "auto"})

    async def _visit_done(self, conn: asyncpg.Connection, record: Record, ev: VisitDone) -> None:
        if ev.kind != "pre-discharge":
            return
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        task_id = await store.add_task(
            conn,
            case_id=ev.case_id,
            kind="care-plan",
            centre_id=case["centre_id"],
            priority=case["priority"],
            due_at=datetime.now(UTC),
        )
        if not self._auto or task_id is None:
            return
        await self._set_plan(
            conn, record, case, domain.default_request(case["requested_services"]), task_id
        )

    async def _set_plan(
        self,
        conn: asyncpg.Connection,
        record: Record,
        case: asyncpg.Record,
        requested: list[tuple[str, int]],
        task_id: int,
    ) -> None:
        policy = self._policies.for_year(case["policy_year"])
        used = await store.used_this_year(conn, case["person_id"], case["policy_year"])
        fit = domain.plan(
            policy, requested=requested, fee_support=case["fee_support"], already_used_krw=used
        )
        lines = domain.plan_lines(fit)
        await store.add_plan(
            conn,
            case_id=case["case_id"],
            person_id=case["person_id"],
            policy_year=case["policy_year"],
            lines=[line.model_dump() for line in lines],
            total_krw=fit.total_krw,
            publicly_paid_krw=fit.district_total_krw,
            self_paid_krw=fit.resident_total_krw,
        )
        await store.complete_task(conn, task_id, {"lines": [line.model_dump() for line in lines]})
        base = {
            "case_id": case["case_id"],
            "hospital_id": case["hospital_id"],
            "referral_id": case["referral_id"],
        }
        await emit(
            conn,
            CarePlanSet(
                **base,
                occurred_at=datetime.now(UTC),
                lines=lines,
                total_krw=fit.total_krw,
                publicly_paid_krw=fit.district_total_krw,
                self_paid_krw=fit.resident_total_krw,
                partial=fit.partial,
                paid_by=fit.paid_by,
            ),
            service=SERVICE,
            cause=record,
        )
        await emit(
            conn,
            ServicesLinked(**base, occurred_at=datetime.now(UTC)),
            service=SERVICE,
            cause=record,
        )

    async def _cancelled(self, conn: asyncpg.Connection, record: Record, ev: CaseCancelled) -> None:
        await store.close_case(conn, ev.case_id)
