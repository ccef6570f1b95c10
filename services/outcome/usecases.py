"""Outcome's use case: every case event a hospital should hear of becomes status
updates, one per referral that follows the case, each with its own next sequence.

The decision is `status_machine.decide` (pure: the FHIR Task state machine); this
module loads the cases and their referrals' feeds (locked for the transaction), asks it
for each event in order, and writes the answer (set-based, issue 12): the case and the feeds, the updates through the outbox, the
case events outcome emits. A move the state machine refuses is counted
(`carelink_illegal_status_moves_total`) and logged as an error; nothing is sent for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from contracts import hospital_v1 as hv1
from contracts.cases import CaseEvent
from contracts.cloudevents import Envelope
from contracts.intake import CaseReceived, CaseRejected
from contracts.scheduling import VisitDone
from contracts.topics import updates
from services.lib.policy import Findings, load_findings
from services.lib.runtime import outbox
from services.lib.runtime.errors import PermanentError, describe
from services.lib.runtime.events import emit, read_case_event
from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import ILLEGAL_STATUS_MOVES
from services.lib.runtime.pipeline import Record, Scope
from services.outcome import status_machine, store
from services.outcome.domain import Update
from services.outcome.status_machine import Case, Decision, Feed, FeedKey, Refusal, Send

log = get_logger(__name__)
SERVICE = "outcome"


class Outcome:
    """`findings`: the visit findings vocabulary (deploy/config/findings.yaml unless
    given); a visit's codes reach the hospital with its labels, anything else not at all.

    One record (`handle`) and a whole batch (`handle_many`, the pipeline's set path) take
    the same code: a batch's cases and feeds are read and locked with one query each, the
    events decided in order over them in memory (a later event of a case sees what an
    earlier one did, as if each had been its own transaction), and what changed written
    with one statement per table at the end. The outbox rows are collected by the
    pipeline into one INSERT and one NOTIFY.
    """

    def __init__(self, findings: Findings | None = None) -> None:
        self._findings = findings if findings is not None else load_findings()

    async def handle(self, conn: asyncpg.Connection, record: Record) -> None:
        event = read_case_event(record)
        if event is not None:
            # The pipeline already handles the record in its own scope.
            await self._decide(conn, [(record, event)], lambda _: contextlib.nullcontext())

    __call__ = handle

    async def handle_many(
        self, conn: asyncpg.Connection, records: Sequence[Record], scope: Scope
    ) -> dict[int, str]:
        aside: dict[int, str] = {}
        events: list[tuple[Record, CaseEvent]] = []
        for index, record in enumerate(records):
            try:
                event = read_case_event(record)
            except (PermanentError, ValidationError) as exc:
                aside[index] = describe(exc)  # a producer's bug: dead-lettered, the rest go on
                continue
            if event is not None:
                events.append((record, event))
        if events:
            await self._decide(conn, events, scope)
        return aside

    async def _decide(
        self, conn: asyncpg.Connection, events: list[tuple[Record, CaseEvent]], scope: Scope
    ) -> None:
        state = await _State.load(conn, [event for _, event in events])
        now = datetime.now(UTC)
        for record, event in events:
            with scope(record):
                if isinstance(event, VisitDone):
                    _report_dropped_findings(event, self._findings)
                before = state.case(event)
                decision = status_machine.decide(before, event, now=now, findings=self._findings)
                state.keep(before, decision.case)
                await _tell(conn, record, decision, state)
        await state.save(conn)


class _State:
    """The cases and feeds a set of events touches, as they were read (locked) and as the
    decisions change them; `save` writes what changed."""

    def __init__(self, cases: dict[str, Case], feeds: dict[FeedKey, tuple[str, Feed]]) -> None:
        self._cases = cases
        # Each referral's feed and the case it follows: a referral may move to another
        # case (a receipt under a new case after a declined link).
        self._feeds = feeds
        self._changed_cases: set[str] = set()
        self._changed_feeds: set[FeedKey] = set()
        self.sent: list[tuple[str, hv1.StatusChanged]] = []

    @classmethod
    async def load(cls, conn: asyncpg.Connection, events: Sequence[CaseEvent]) -> _State:
        rows = await store.lock_cases(conn, {event.case_id for event in events})
        named = {(event.hospital_id, event.referral_id) for event in events}
        feeds = await store.lock_feeds(conn, set(rows), named)
        return cls(
            {case_id: _case_of(row) for case_id, row in rows.items()},
            {
                (f["hospital_id"], f["referral_id"]): (f["case_id"], status_machine.feed_of(f))
                for f in feeds
            },
        )

    def case(self, event: CaseEvent) -> Case:
        """The case as the event finds it, with the feeds that follow it; the referral
        the event names joins them only by its receipt (or rejection): one held under
        another case moves here only then."""
        moving = isinstance(event, CaseReceived | CaseRejected)
        named = (event.hospital_id, event.referral_id)
        feeds = tuple(
            feed
            for key, (case_id, feed) in sorted(self._feeds.items())
            if case_id == event.case_id or (moving and key == named)
        )
        return replace(self._cases[event.case_id], feeds=feeds)

    def keep(self, before: Case, after: Case) -> None:
        if (after.path, after.plan, after.closure) != (before.path, before.plan, before.closure):
            self._cases[after.case_id] = replace(after, feeds=())
            self._changed_cases.add(after.case_id)
        for feed in after.feeds:
            if feed not in before.feeds:
                self._feeds[feed.key] = (after.case_id, feed)
                self._changed_feeds.add(feed.key)

    async def save(self, conn: asyncpg.Connection) -> None:
        await store.save_cases(
            conn, {case_id: _case_fields(self._cases[case_id]) for case_id in self._changed_cases}
        )
        await store.save_feeds(conn, [self._feeds[key] for key in sorted(self._changed_feeds)])
        await store.record_sent(conn, self.sent)


async def _tell(
    conn: asyncpg.Connection, record: Record, decision: Decision, state: _State
) -> None:
    """The decision's events and updates, in the outbox; its refusals, loudly."""
    after = decision.case
    for refusal in decision.refusals:
        _report(refusal)
    if decision.ignored and not decision.sends:
        log.info("no update", case_id=after.case_id, why=decision.ignored)
    for event in decision.emits:
        await emit(conn, event, service=SERVICE, cause=record)
    for send in decision.sends:
        state.sent.append((send.hospital_id, await _send(conn, after.case_id, send)))


def _case_of(row: asyncpg.Record) -> Case:
    return Case(
        case_id=row["case_id"], path=_path(row), plan=row["plan"], closure=row["closure"] or {}
    )


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


async def _send(conn: asyncpg.Connection, case_id: str, send: Send) -> hv1.StatusChanged:
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
    log.info(
        "status update",
        case_id=case_id,
        sequence=send.sequence,
        status=update.status.value,
        business_status=update.business_status,
    )
    return message


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
