"""Outcome's use cases: every case event a hospital should hear of becomes a
status update, sent to every referral that follows the case, each with its own
next sequence; the post-discharge visit closes the case with the outcome report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts import hospital_v1 as hv1
from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.intake import CaseLinked, CaseReceived, CaseRejected, CaseStatusRequested
from contracts.outcome import CaseClosed, CaseLinkDeclined
from contracts.referral import CarePlanSet, PlanLine
from contracts.scheduling import VisitDone
from contracts.topics import updates
from services.lib.runtime import outbox
from services.lib.runtime.events import emit, read_case_event
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record
from services.outcome import domain, store

log = get_logger(__name__)
SERVICE = "outcome"


class Outcome:
    async def handle(self, conn: asyncpg.Connection, record: Record) -> None:
        event = read_case_event(record)
        if event is None:
            return
        case = await store.case(conn, event.case_id)
        if isinstance(event, CaseReceived):
            await store.follow(conn, event.case_id, event.hospital_id, event.referral_id)
        if isinstance(event, CaseLinked):
            await self._linked(conn, case, event)
            return
        if isinstance(event, CaseStatusRequested):
            await self._repeat(conn, case, event)
            return
        if isinstance(event, CaseRejected):
            await self._rejected(conn, case, event)
            return
        if isinstance(event, CarePlanSet):
            await store.save_status(conn, event.case_id, plan=event.model_dump(mode="json"))
        if case["status"] in domain.FINAL:
            return  # nothing changes a finished case; late events are not news to hospitals
        update = domain.translate(event)
        if update is not None:
            await self._broadcast(conn, event, update)
        if isinstance(event, VisitDone) and event.kind == "post-discharge":
            await self._close(conn, record, event)

    async def _close(self, conn: asyncpg.Connection, record: Record, event: VisitDone) -> None:
        case = await store.case(conn, event.case_id)
        plan = case["plan"] or {}
        closed = CaseClosed(
            case_id=event.case_id,
            hospital_id=event.hospital_id,
            referral_id=event.referral_id,
            occurred_at=datetime.now(UTC),
            delivered=[PlanLine.model_validate(line) for line in plan.get("lines", [])],
            total_krw=plan.get("total_krw", 0),
            publicly_paid_krw=plan.get("publicly_paid_krw", 0),
            self_paid_krw=plan.get("self_paid_krw", 0),
            annual_cap_krw=plan.get("annual_cap_krw", 0),
            cap_remaining_krw=plan.get("cap_remaining_krw", 0),
            precautions_acknowledged=event.precautions_acknowledged,
        )
        await emit(conn, closed, service=SERVICE, cause=record)
        update = domain.translate(closed)
        if update is None:
            raise RuntimeError("domain.translate gave no hospital update for a closed case")
        await self._broadcast(conn, closed, update)

    async def _linked(
        self, conn: asyncpg.Connection, case: asyncpg.Record, event: CaseLinked
    ) -> None:
        """A second hospital's referral joined the case: it hears `received`, then where
        the case stands now. If the case closed meanwhile, intake is asked to open a new one."""
        if case["status"] in domain.FINAL:
            await emit(
                conn,
                CaseLinkDeclined(
                    case_id=event.case_id,
                    hospital_id=event.hospital_id,
                    referral_id=event.referral_id,
                    occurred_at=datetime.now(UTC),
                ),
                service=SERVICE,
            )
            return
        await store.follow(conn, event.case_id, event.hospital_id, event.referral_id)
        await self._send(
            conn,
            event.hospital_id,
            event.referral_id,
            event,
            domain.Update(hv1.Status.RECEIVED, "received", details={"joined_existing_case": True}),
        )
        current = _current(case)
        if current is not None and current.status != hv1.Status.RECEIVED:
            await self._send(conn, event.hospital_id, event.referral_id, event, current)

    async def _repeat(
        self, conn: asyncpg.Connection, case: asyncpg.Record, event: CaseStatusRequested
    ) -> None:
        current = _current(case)
        if current is not None:
            await self._send(conn, event.hospital_id, event.referral_id, event, current)

    async def _rejected(
        self, conn: asyncpg.Connection, case: asyncpg.Record, event: CaseRejected
    ) -> None:
        """A rejection answers one record: it changes the case only if the case had
        not got further than `received` (a new referral refused)."""
        await store.follow(conn, event.case_id, event.hospital_id, event.referral_id)
        update = domain.translate(event)
        if update is None:
            raise RuntimeError("domain.translate gave no hospital update for a rejection")
        if case["status"] in (None, hv1.Status.RECEIVED.value):
            await _save(conn, event.case_id, update)
        await self._send(conn, event.hospital_id, event.referral_id, event, update)

    async def _broadcast(
        self, conn: asyncpg.Connection, event: CaseEvent, update: domain.Update
    ) -> None:
        await _save(conn, event.case_id, update)
        for follower in await store.followers(conn, event.case_id):
            await self._send(conn, follower["hospital_id"], follower["referral_id"], event, update)

    async def _send(
        self,
        conn: asyncpg.Connection,
        hospital_id: str,
        referral_id: str,
        event: CaseEvent,
        update: domain.Update,
    ) -> None:
        await store.follow(conn, event.case_id, hospital_id, referral_id)
        sequence = await store.next_sequence(conn, hospital_id, referral_id)
        message = hv1.StatusChanged(
            referral_id=referral_id,
            case_id=event.case_id,
            sequence=sequence,
            status=update.status,
            business_status=update.business_status,
            reason_code=update.reason_code,
            reason=update.reason,
            occurred_at=event.occurred_at,
            details=update.details,
        )
        # The id derives from the referral and sequence: a republished update keeps its
        # ce_id, so the hospital drops the repeat.
        envelope = Envelope.new(
            source="carelink/outcome",
            type=hv1.STATUS_CHANGED,
            subject=referral_id,
            event_id=f"{hospital_id}/{referral_id}/{sequence}",
        )
        await outbox.enqueue_event(
            conn, topic=updates(hospital_id), key=referral_id, envelope=envelope, data=message
        )
        log.info(
            "status update",
            case_id=event.case_id,
            sequence=sequence,
            status=update.status.value,
            business_status=update.business_status,
        )


def _current(case: asyncpg.Record) -> domain.Update | None:
    if case["status"] is None:
        return None
    return domain.Update(
        hv1.Status(case["status"]),
        case["business_status"],
        case["reason_code"],
        case["reason"],
        dict(case["details"] or {}),
    )


async def _save(conn: asyncpg.Connection, case_id: str, update: domain.Update) -> None:
    fields: dict[str, Any] = {
        "status": update.status.value,
        "business_status": update.business_status,
        "reason_code": update.reason_code,
        "reason": update.reason,
        "details": update.details,
    }
    await store.save_status(conn, case_id, **fields)
