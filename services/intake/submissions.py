"""Intake's hospital submissions handled as a set (issue 12): the pipeline hands the
whole batch over (`handle_many`); runs of submissions are decided together.

For a segment of submissions (`batch.segments`): the referrals already stored are
read in one query, the decisions made in pure code (`batch.decide`, the rules of
`domain`), the persons of those let through upserted in one statement and their
open cases read in one, then cases and referrals written with one statement each;
the events go to the outbox, which the pipeline writes with one INSERT and one
NOTIFY for the whole batch. Every other record (follow-ups, broken records, the
closures from care.cases) goes through the one-record path in its place, so the
records of one referral keep their order. A record that names no referral is set
aside for the dead letters without stopping the rest.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.hospital_v1 import ReferralSubmitted
from contracts.intake import CaseLinked, CaseStatusRequested, CaseSubmissionRefused
from contracts.topics import CASES
from services.intake import batch, domain, store
from services.intake.usecases import REFUSED_REASON, SERVICE, Intake, emit_rejected, new_case_id
from services.lib.runtime.events import emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record, Scope

log = get_logger(__name__)


class BatchedIntake(Intake):
    """`Intake`, plus the set-based path the pipeline uses for whole batches. A single
    submission (a batch of one, the one-at-a-time fallback) takes the same code as a
    segment of one, so there is one implementation of what a submission does."""

    async def _submitted(
        self, conn: asyncpg.Connection, record: Record, reading: domain.Submitted
    ) -> None:
        item = batch.Item(0, reading, domain.patient_key(reading.event))
        # The caller already handles the record in its own scope.
        await self._segment(conn, [item], {0: record}, lambda _: contextlib.nullcontext())

    async def handle_many(
        self, conn: asyncpg.Connection, records: Sequence[Record], scope: Scope
    ) -> dict[int, str]:
        aside: dict[int, str] = {}
        run: list[tuple[Record, batch.Item]] = []
        now = datetime.now(UTC)
        for index, record in enumerate(records):
            reading = None
            if record.topic != CASES:
                reading = domain.read_hospital_record(
                    record.topic,
                    record.key_text,
                    record.headers,
                    record.value,
                    policies=self._policies,
                    registry=self._registry,
                    now=now,
                )
            if isinstance(reading, domain.Submitted):
                run.append((record, batch.Item(index, reading, domain.patient_key(reading.event))))
                continue
            # Anything else waits for the submissions before it, then goes its own way.
            await self._submissions(conn, run, scope)
            run = []
            if isinstance(reading, domain.Unaddressed):
                aside[index] = reading.reason  # wrote nothing: the pipeline dead-letters it
                continue
            with scope(record):
                await self.handle(conn, record)
        await self._submissions(conn, run, scope)
        return aside

    async def _submissions(
        self, conn: asyncpg.Connection, run: list[tuple[Record, batch.Item]], scope: Scope
    ) -> None:
        records = {item.index: record for record, item in run}
        for segment in batch.segments(item for _, item in run):
            await self._segment(conn, segment, records, scope)

    async def _segment(
        self,
        conn: asyncpg.Connection,
        segment: list[batch.Item],
        records: dict[int, Record],
        scope: Scope,
    ) -> None:
        now = datetime.now(UTC)
        existing = await store.find_many(conn, [item.referral for item in segment])
        decisions = batch.decide(
            segment,
            existing,
            lambda reading: domain.triage(
                reading.event, policies=self._policies, registry=self._registry
            ),
        )
        admitted = [
            item.patient_key for item, d in zip(segment, decisions, strict=True)
            if isinstance(d, batch.Admit)
        ]  # fmt: skip
        persons = await store.persons_for_many(
            conn, [(key, f"person-{uuid.uuid4()}") for key in admitted]
        )
        open_cases = await store.open_cases_of(conn, sorted(set(persons.values())))

        cases: list[tuple[str, str | None, bool]] = []
        referrals: list[store.NewReferral] = []
        for item, decision in zip(segment, decisions, strict=True):
            record, sub = records[item.index], item.reading.event
            with scope(record):
                if isinstance(decision, batch.Again):
                    await _answer_again(conn, record, sub, decision, now)
                    continue
                if isinstance(decision, batch.Reject):
                    case_id = new_case_id()
                    cases.append((case_id, None, False))
                    referrals.append(
                        _referral(item, case_id, f"rejected:{decision.decision.reason_code}", None)
                    )
                    if decision.decision.reason_code != "missing-consent":
                        await emit(
                            conn,
                            domain.received(case_id, sub, now, "unknown"),
                            service=SERVICE,
                            cause=record,
                        )
                    await emit_rejected(
                        conn,
                        record,
                        case_id,
                        sub.hospital_id,
                        sub.referral_id,
                        decision.decision.reason_code,
                        decision.decision.reason,
                    )
                    continue
                person_id = persons[item.patient_key]
                open_case = open_cases.get(person_id)
                if open_case is not None:
                    referrals.append(_referral(item, open_case, "linked", item.reading.data))
                    await emit(
                        conn,
                        CaseLinked(**domain.event_ids(open_case, sub, now)),
                        service=SERVICE,
                        cause=record,
                    )
                    log.info("referral joined the person's open case", case_id=open_case)
                    continue
                case_id = new_case_id()
                cases.append((case_id, person_id, True))
                referrals.append(_referral(item, case_id, "accepted", item.reading.data))
                triage = decision.decision
                await emit(
                    conn,
                    domain.received(case_id, sub, now, triage.age_band),
                    service=SERVICE,
                    cause=record,
                )
                await emit(
                    conn,
                    domain.accepted(case_id, sub, triage, person_id, now),
                    service=SERVICE,
                    cause=record,
                )
                log.info("referral accepted", case_id=case_id, fee_support=triage.fee_support)
        await store.add_cases(conn, cases)
        await store.add_referrals(conn, referrals)


async def _answer_again(
    conn: asyncpg.Connection,
    record: Record,
    sub: ReferralSubmitted,
    decision: batch.Again,
    now: datetime,
) -> None:
    """A referral id seen before: the current status again if identical, else refused
    (the referral goes on, or stays finished, as it was)."""
    case_id = decision.existing.case_id
    if decision.repeat == "identical":
        log.info("identical re-submission", case_id=case_id)
        event: CaseStatusRequested | CaseSubmissionRefused = CaseStatusRequested(
            **domain.event_ids(case_id, sub, now)
        )
    else:
        log.info("submission refused", case_id=case_id, repeat=decision.repeat)
        event = CaseSubmissionRefused(
            **domain.event_ids(case_id, sub, now),
            reason_code="conflicting-duplicate",
            reason=REFUSED_REASON[decision.repeat],
        )
    await emit(conn, event, service=SERVICE, cause=record)


def _referral(
    item: batch.Item, case_id: str, outcome: str, submission: dict[str, Any] | None
) -> store.NewReferral:
    hospital_id, referral_id = item.referral
    return store.NewReferral(
        hospital_id=hospital_id,
        referral_id=referral_id,
        case_id=case_id,
        content_hash=item.reading.content_hash,
        outcome=outcome,
        submission=submission,
    )
