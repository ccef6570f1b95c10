"""Outcome's use cases: every case event the hospital should hear of becomes a
status update with the next sequence; the post-discharge visit closes the case."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts import hospital_v1 as hv1
from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.intake import CaseResubmitted
from contracts.outcome import CaseClosed
from contracts.referral import CarePlanSet, PlanLine
from contracts.scheduling import VisitDone
from contracts.topics import updates
from services.outcome import domain, store
from services.runtime import outbox
from services.runtime.events import emit, read_case_event
from services.runtime.logging import get_logger
from services.runtime.pipeline import Record

log = get_logger(__name__)
SERVICE = "outcome"
# Statuses after which nothing but a repeat is sent.
FINAL = {"completed", "cancelled", "failed", "rejected"}


class Outcome:
    async def handle(self, conn: asyncpg.Connection, record: Record) -> None:
        event = read_case_event(record)
        if event is None:
            return
        row = await store.get_or_create(conn, event.case_id, event.hospital_id, event.referral_id)
        if isinstance(event, CaseResubmitted):
            await self._repeat_current(conn, row, event)
            return
        if isinstance(event, CarePlanSet):
            await store.set_fields(conn, event.case_id, plan=event.model_dump(mode="json"))
        update = domain.translate(event)
        if update is not None:
            await self._send(conn, row, event, update)
            row = await store.get_or_create(
                conn, event.case_id, event.hospital_id, event.referral_id
            )
        if isinstance(event, VisitDone) and event.kind == "post-discharge":
            await self._close(conn, record, row, event)

    async def _close(
        self, conn: asyncpg.Connection, record: Record, row: asyncpg.Record, event: VisitDone
    ) -> None:
        if row["status"] in FINAL:
            return
        plan = row["plan"] or {}
        closed = CaseClosed(
            case_id=event.case_id,
            hospital_id=event.hospital_id,
            referral_id=event.referral_id,
            occurred_at=datetime.now(UTC),
            delivered=[PlanLine.model_validate(line) for line in plan.get("lines", [])],
            total_krw=plan.get("total_krw", 0),
            publicly_paid_krw=plan.get("publicly_paid_krw", 0),
            self_paid_krw=plan.get("self_paid_krw", 0),
        )
        await emit(conn, closed, service=SERVICE, cause=record)
        update = domain.translate(closed)
        assert update is not None
        await self._send(conn, row, closed, update)

    async def _repeat_current(
        self, conn: asyncpg.Connection, row: asyncpg.Record, event: CaseEvent
    ) -> None:
        if row["status"] is None:
            return  # nothing sent yet; the first update is on its way
        update = domain.Update(
            hv1.Status(row["status"]),
            row["business_status"],
            row["reason_code"],
            row["reason"],
            row["details"],
        )
        await self._send(conn, row, event, update)

    async def _send(
        self, conn: asyncpg.Connection, row: asyncpg.Record, event: CaseEvent, update: domain.Update
    ) -> None:
        sequence = row["sequence"] + 1
        message = hv1.StatusChanged(
            referral_id=event.referral_id,
            case_id=event.case_id,
            sequence=sequence,
            status=update.status,
            business_status=update.business_status,
            reason_code=update.reason_code,
            reason=update.reason,
            occurred_at=event.occurred_at,
            details=update.details,
        )
        # The update's id derives from case and sequence: a republished update keeps
        # its ce_id, so the hospital drops the repeat.
        envelope = Envelope.new(
            source="carelink/outcome",
            type=hv1.STATUS_CHANGED,
            subject=event.referral_id,
            event_id=f"{event.case_id}/{sequence}",
        )
        await outbox.enqueue_event(
            conn,
            topic=updates(event.hospital_id),
            key=event.referral_id,
            envelope=envelope,
            data=message,
        )
        await store.save_status(
            conn,
            event.case_id,
            sequence=sequence,
            status=update.status.value,
            business_status=update.business_status,
            reason_code=update.reason_code,
            reason=update.reason,
            details=update.details,
        )
        log.info(
            "status update",
            case_id=event.case_id,
            sequence=sequence,
            status=update.status.value,
            business_status=update.business_status,
        )
