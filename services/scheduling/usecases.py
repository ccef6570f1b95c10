"""Scheduling's use cases: plan visits as case events arrive."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts.intake import CaseAccepted, CaseCancelled, CaseDischarged
from contracts.referral import ServicesLinked
from contracts.scheduling import VisitDone, VisitScheduled
from services.runtime.events import CaseEventRouter, emit
from services.runtime.pipeline import Handler, Record
from services.scheduling import domain, store

SERVICE = "scheduling"


class Scheduling:
    def __init__(self, *, auto_complete: bool) -> None:
        # Until coordinators work the queue, the walking skeleton marks visits done at once.
        self._auto = auto_complete

    def handler(self) -> Handler:
        return CaseEventRouter(
            {
                CaseAccepted: self._accepted,
                ServicesLinked: self._services_linked,
                CaseDischarged: self._discharged,
                CaseCancelled: self._cancelled,
            }
        )

    async def _accepted(self, conn: asyncpg.Connection, record: Record, ev: CaseAccepted) -> None:
        if not await store.add_case(
            conn,
            case_id=ev.case_id,
            hospital_id=ev.hospital_id,
            referral_id=ev.referral_id,
            centre_id=ev.centre_id,
            priority=ev.priority,
            expected_discharge_date=ev.expected_discharge_date,
        ):
            return
        start, end = domain.pre_discharge_window(datetime.now(UTC), ev.expected_discharge_date)
        await self._schedule(conn, record, ev, "pre-discharge", start, end)

    async def _services_linked(
        self, conn: asyncpg.Connection, record: Record, ev: ServicesLinked
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        await store.set_case(conn, ev.case_id, services_linked=True)
        if case["discharged_at"] is not None:
            await self._schedule_post(conn, record, ev, case["discharged_at"])

    async def _discharged(
        self, conn: asyncpg.Connection, record: Record, ev: CaseDischarged
    ) -> None:
        case = await store.get_case(conn, ev.case_id)
        if case is None or case["closed"]:
            return
        await store.set_case(conn, ev.case_id, discharged_at=ev.discharged_at)
        if case["services_linked"]:
            await self._schedule_post(conn, record, ev, ev.discharged_at)

    async def _cancelled(self, conn: asyncpg.Connection, record: Record, ev: CaseCancelled) -> None:
        if await store.get_case(conn, ev.case_id) is not None:
            await store.set_case(conn, ev.case_id, closed=True)
            await store.cancel_open_visits(conn, ev.case_id)

    async def _schedule_post(
        self,
        conn: asyncpg.Connection,
        record: Record,
        ev: ServicesLinked | CaseDischarged,
        discharged_at: datetime,
    ) -> None:
        start, end = domain.post_discharge_window(discharged_at)
        await self._schedule(conn, record, ev, "post-discharge", start, end)

    async def _schedule(
        self,
        conn: asyncpg.Connection,
        record: Record,
        ev: CaseAccepted | ServicesLinked | CaseDischarged,
        kind: str,
        start: datetime,
        end: datetime,
    ) -> None:
        visit_id = await store.add_visit(conn, ev.case_id, kind, start, end)
        if visit_id is None:
            return  # already planned
        base = {"case_id": ev.case_id, "hospital_id": ev.hospital_id, "referral_id": ev.referral_id}
        await emit(
            conn,
            VisitScheduled(
                **base,
                occurred_at=datetime.now(UTC),
                kind=kind,  # type: ignore[arg-type]
                window_start=start,
                window_end=end,
            ),
            service=SERVICE,
            cause=record,
        )
        if self._auto:
            await store.complete_visit(conn, visit_id, {"precautions_acknowledged": True})
            await emit(
                conn,
                VisitDone(
                    **base,
                    occurred_at=datetime.now(UTC),
                    kind=kind,  # type: ignore[arg-type]
                    precautions_acknowledged=True,
                ),
                service=SERVICE,
                cause=record,
            )
