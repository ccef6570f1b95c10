"""Outcome's use case: every case event a hospital should hear of becomes status
updates, one per referral that follows the case, each with its own next sequence.

The decision is `status_machine.decide` (pure: the FHIR Task state machine); this
module loads the case and its referrals' feeds (locked for the transaction), asks it,
and writes the answer: the case and the feeds, the updates through the outbox, the
case events outcome emits. A move the state machine refuses is counted
(`carelink_illegal_status_moves_total`) and logged as an error; nothing is sent for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts import hospital_v1 as hv1
from contracts.cloudevents import Envelope
from contracts.intake import CaseReceived, CaseRejected
from contracts.scheduling import VisitDone
from contracts.topics import updates
from services.lib.policy import Findings, load_findings
from services.lib.runtime import outbox
from services.lib.runtime.events import emit, read_case_event
from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import ILLEGAL_STATUS_MOVES
from services.lib.runtime.pipeline import Record
from services.outcome import status_machine, store
from services.outcome.domain import Update
from services.outcome.status_machine import Case, Decision, Refusal, Send

log = get_logger(__name__)
SERVICE = "outcome"


class Outcome:
    """`findings`: the visit findings vocabulary (deploy/config/findings.yaml unless
    given); a visit's codes reach the hospital with its labels, anything else not at all."""

    def __init__(self, findings: Findings | None = None) -> None:
        self._findings = findings if findings is not None else load_findings()

    async def handle(self, conn: asyncpg.Connection, record: Record) -> None:
        event = read_case_event(record)
        if event is None:
            return
        if isinstance(event, VisitDone):
            _report_dropped_findings(event, self._findings)
        row = await store.case(conn, event.case_id)
        rows = await store.feeds(conn, event.case_id, event.hospital_id, event.referral_id)
        # A referral held under another case joins this one only by its receipt (or
        # rejection): a referral moved to a case of its own after a declined link.
        moving = isinstance(event, CaseReceived | CaseRejected)
        case = Case(
            case_id=event.case_id,
            path=_path(row),
            feeds=tuple(
                status_machine.feed_of(f) for f in rows if f["case_id"] == event.case_id or moving
            ),
            plan=row["plan"],
            closure=row["closure"] or {},
        )
        decision = status_machine.decide(
            case, event, now=datetime.now(UTC), findings=self._findings
        )
        await _write(conn, record, case, decision)


async def _write(
    conn: asyncpg.Connection, record: Record, before: Case, decision: Decision
) -> None:
    after = decision.case
    for refusal in decision.refusals:
        _report(refusal)
    if decision.ignored and not decision.sends:
        log.info("no update", case_id=after.case_id, why=decision.ignored)
    if (after.path, after.plan, after.closure) != (before.path, before.plan, before.closure):
        await store.save_case(conn, after.case_id, _case_fields(after))
    changed = [feed for feed in after.feeds if feed not in before.feeds]
    await store.save_feeds(conn, after.case_id, changed)
    for event in decision.emits:
        await emit(conn, event, service=SERVICE, cause=record)
    for send in decision.sends:
        await _send(conn, after.case_id, send)


def _path(row: asyncpg.Record) -> tuple[Update, ...]:
    """The case's chain; a row with a status but no chain (written before the chain was
    kept, or by hand) is the chain of its current status alone."""
    if row["path"]:
        return tuple(Update.from_json(u) for u in row["path"])
    if row["status"] is None:
        return ()
    return (Update.from_json(dict(row)),)


def _case_fields(case: Case) -> dict[str, Any]:
    current = case.current
    return {
        "path": [u.to_json() for u in case.path],
        "plan": dict(case.plan) if case.plan is not None else None,
        "closure": dict(case.closure),
        "status": current.status.value if current else None,
        "business_status": current.business_status if current else None,
        "reason_code": current.reason_code if current else None,
        "reason": current.reason if current else None,
        "details": current.details if current else {},
    }


async def _send(conn: asyncpg.Connection, case_id: str, send: Send) -> None:
    update = send.update
    message = hv1.StatusChanged(
        referral_id=send.referral_id,
        case_id=case_id,
        sequence=send.sequence,
        status=update.status,
        business_status=update.business_status,
        reason_code=update.reason_code,
        reason=update.reason,
        reason_ko=update.reason_ko,
        occurred_at=send.occurred_at,
        details=update.details,
    )
    # The id derives from the referral and sequence: a republished update keeps its
    # ce_id, so the hospital drops the repeat.
    envelope = Envelope.new(
        source="carelink/outcome",
        type=hv1.STATUS_CHANGED,
        subject=send.referral_id,
        event_id=f"{send.hospital_id}/{send.referral_id}/{send.sequence}",
    )
    await outbox.enqueue_event(
        conn,
        topic=updates(send.hospital_id),
        key=send.referral_id,
        envelope=envelope,
        data=message,
    )
    await store.record_sent(conn, send.hospital_id, message)
    log.info(
        "status update",
        case_id=case_id,
        sequence=send.sequence,
        status=update.status.value,
        business_status=update.business_status,
    )


def _report_dropped_findings(event: VisitDone, findings: Findings) -> None:
    """Findings that are not codes of the vocabulary never reach a hospital: an older
    event's free strings (dropped on reading) or a code this vocabulary does not list.
    Logged by count, never by value (free text may be personal)."""
    not_codes = event.not_codes
    unknown = len(findings.unknown(event.findings))
    if not_codes or unknown:
        log.warning(
            "visit findings dropped: not codes of the findings vocabulary",
            case_id=event.case_id,
            visit=event.kind,
            not_codes=not_codes,
            unknown_codes=unknown,
        )


def _report(refusal: Refusal) -> None:
    """An illegal move is a bug somewhere upstream (or in the table): loud, never sent."""
    from_status = refusal.from_status.value if refusal.from_status else "none"
    ILLEGAL_STATUS_MOVES.labels(
        service=SERVICE, from_status=from_status, to_status=refusal.to_status.value
    ).inc()
    log.error(
        "illegal status move refused: no update sent",
        case_id=refusal.case_id,
        hospital_id=refusal.hospital_id,
        referral_id=refusal.referral_id,
        from_status=from_status,
        to_status=refusal.to_status.value,
        business_status=refusal.business_status,
        problem=refusal.problem,
    )
