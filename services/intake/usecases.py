"""Intake's use cases: decide about one hospital record, store, and emit case
events, all inside the caller's transaction.

Intake also reads care.cases, only to learn when a case closes: a later
referral of the same person then starts a new case instead of joining it, and
a hospital's follow-up for a closed case gets the current status again.

What a record says and what it changes are decided in `domain` (pure); the use
cases read what intake holds, ask the domain, and write the answer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from contracts import hospital_v1 as hv1
from contracts.intake import (
    CaseCancelled,
    CaseLinked,
    CaseRejected,
    CaseStatusRequested,
    CaseSubmissionRefused,
    FieldError,
)
from contracts.outcome import CaseClosed, CaseLinkDeclined
from contracts.referral import CaseFailed, ReviewCompleted
from contracts.topics import CASES
from services.intake import destruction, domain, privacy, store
from services.lib.policy import PolicyBook, Registry
from services.lib.runtime.errors import PermanentError
from services.lib.runtime.events import CaseEventRouter, emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record

log = get_logger(__name__)
SERVICE = "intake"
CONTRACT_REASON = domain.CONTRACT_REASON
REFUSED_REASON = {
    "conflicting": "this referral_id was already used for a different submission",
    "finished": "this referral_id belongs to a finished referral: a new referral needs a new referral_id",
}


class Intake:
    def __init__(self, *, policies: PolicyBook, registry: Registry) -> None:
        self._policies = policies
        self._registry = registry
        self._case_events = CaseEventRouter(
            {
                CaseClosed: self._case_closed,
                CaseFailed: self._case_closed,
                ReviewCompleted: self._reviewed,
                CaseLinkDeclined: self._link_declined,
            }
        )

    async def handle(self, conn: asyncpg.Connection, record: Record) -> None:
        if record.topic == CASES:
            await self._case_events(conn, record)
        else:
            await self._hospital_record(conn, record)

    __call__ = handle

    def wants(self, record: Record) -> bool:
        """Every hospital record; of care.cases only the closures intake follows."""
        return record.topic != CASES or self._case_events.wants(record)

    # -- hospital records -----------------------------------------------------------

    async def _hospital_record(self, conn: asyncpg.Connection, record: Record) -> None:
        reading = domain.read_hospital_record(
            record.topic,
            record.key_text,
            record.headers,
            record.value,
            policies=self._policies,
            registry=self._registry,
            now=datetime.now(UTC),
        )
        if isinstance(reading, domain.Unaddressed):
            raise PermanentError(reading.reason)
        if isinstance(reading, domain.Invalid):
            await _Rejecter(conn, record, reading.hospital_id, reading.referral_id).send(
                reading.reason_code, reading.reason, reading.errors
            )
        elif isinstance(reading, domain.Submitted):
            await self._submitted(conn, record, reading)
        else:
            await self._follow_up(conn, record, reading)

    async def _submitted(
        self, conn: asyncpg.Connection, record: Record, reading: domain.Submitted
    ) -> None:
        sub, data, digest = reading.event, reading.data, reading.content_hash
        now = datetime.now(UTC)
        existing = await store.find(conn, sub.hospital_id, sub.referral_id)
        repeat = domain.repeat_of(existing, digest)
        if existing is not None and repeat == "identical":
            log.info("identical re-submission", case_id=existing.case_id)
            await emit(
                conn,
                CaseStatusRequested(**domain.event_ids(existing.case_id, sub, now)),
                service=SERVICE,
                cause=record,
            )
            return
        if existing is not None:
            # Another submission under an open referral's id, or any under a finished
            # one: refused, and the referral goes on (or stays finished) as it was.
            log.info("submission refused", case_id=existing.case_id, repeat=repeat)
            await emit(
                conn,
                CaseSubmissionRefused(
                    **domain.event_ids(existing.case_id, sub, now),
                    reason_code="conflicting-duplicate",
                    reason=REFUSED_REASON[repeat],
                ),
                service=SERVICE,
                cause=record,
            )
            return

        decision = domain.triage(sub, policies=self._policies, registry=self._registry)
        if isinstance(decision, domain.Refused):
            # Refused referrals keep no personal data: only the hash, to spot re-sends.
            case_id = new_case_id()
            await store.add_case(conn, case_id, person_id=None, open=False)
            await store.add_referral(
                conn,
                hospital_id=sub.hospital_id,
                referral_id=sub.referral_id,
                case_id=case_id,
                content_hash=digest,
                outcome=f"rejected:{decision.reason_code}",
                submission=None,
            )
            if decision.reason_code != "missing-consent":
                # Without consent nothing about the patient may be shared, not even the receipt's facts.
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
                decision.reason_code,
                decision.reason,
            )
            return

        person_id = await store.person_for(conn, domain.patient_key(sub), f"person-{uuid.uuid4()}")
        open_case = await store.open_case_of(conn, person_id)
        if open_case is not None:
            # The same person is already being cared for: one case, every hospital informed.
            await store.add_referral(
                conn,
                hospital_id=sub.hospital_id,
                referral_id=sub.referral_id,
                case_id=open_case,
                content_hash=digest,
                outcome="linked",
                submission=data,
            )
            await emit(
                conn,
                CaseLinked(**domain.event_ids(open_case, sub, now)),
                service=SERVICE,
                cause=record,
            )
            log.info("referral joined the person's open case", case_id=open_case)
            return

        case_id = new_case_id()
        await store.add_referral(
            conn,
            hospital_id=sub.hospital_id,
            referral_id=sub.referral_id,
            case_id=await self._open_case(conn, record, sub, decision, person_id, case_id, now),
            content_hash=digest,
            outcome="accepted",
            submission=data,
        )

    async def _open_case(
        self,
        conn: asyncpg.Connection,
        record: Record | None,
        sub: hv1.ReferralSubmitted,
        decision: domain.Triage,
        person_id: str,
        case_id: str,
        now: datetime,
    ) -> str:
        """A new case for a submission the automatic rules let through: received, then
        triaged (`CaseAccepted`; hospitals hear `received`/`triaged`)."""
        await store.add_case(conn, case_id, person_id=person_id, open=True)
        await emit(
            conn,
            domain.received(case_id, sub, now, decision.age_band),
            service=SERVICE,
            cause=record,
        )
        await emit(
            conn,
            domain.accepted(case_id, sub, decision, person_id, now),
            service=SERVICE,
            cause=record,
        )
        log.info("referral accepted", case_id=case_id, fee_support=decision.fee_support)
        return case_id

    async def _link_declined(
        self, conn: asyncpg.Connection, record: Record, ev: CaseLinkDeclined
    ) -> None:
        """The case closed before the joining referral reached it (intake learns of
        closures a moment after hospitals do): the referral gets a case of its own."""
        stored = await store.submission_of(conn, ev.hospital_id, ev.referral_id)
        if stored is None or stored.case_id != ev.case_id:
            return  # already moved: a redelivery
        sub = hv1.ReferralSubmitted.model_validate(stored.submission)
        decision = domain.triage(sub, policies=self._policies, registry=self._registry)
        if not isinstance(decision, domain.Triage):
            return  # cannot happen for a submission that was accepted once
        await store.set_case(conn, ev.case_id, open=False)
        person_id = await store.person_for(conn, domain.patient_key(sub), f"person-{uuid.uuid4()}")
        case_id = await self._open_case(
            conn, record, sub, decision, person_id, new_case_id(), datetime.now(UTC)
        )
        await store.move_referral(conn, ev.hospital_id, ev.referral_id, case_id, outcome="accepted")

    async def _follow_up(
        self, conn: asyncpg.Connection, record: Record, reading: domain.FollowUp
    ) -> None:
        event = reading.event
        existing = await store.find(conn, event.hospital_id, event.referral_id)
        if existing is None:
            # Nothing to tie it to yet. Dead-lettered, so an operator sees it and can
            # replay it once the submission has arrived.
            raise PermanentError("follow-up for a referral that was never submitted")
        await store.add_event(conn, existing.case_id, record.header("ce_type") or "", reading.data)
        update = domain.follow_up(existing, event, now=datetime.now(UTC))
        await apply_update(conn, existing.case_id, existing, update, cause=record)
        if isinstance(event, hv1.ReferralCancelled) and privacy.withdraws_consent(
            event.reason_code
        ):
            # Also for a case already closed (nothing to cancel, but consent is gone);
            # an open case's cancellation destroyed it above, and a repeat is a no-op.
            await destruction.destroy_case(conn, existing.case_id, reason=privacy.CONSENT_WITHDRAWN)

    # -- closures seen on care.cases ------------------------------------------------

    async def _case_closed(
        self, conn: asyncpg.Connection, record: Record, ev: CaseClosed | CaseFailed
    ) -> None:
        await store.set_case(conn, ev.case_id, open=False)

    async def _reviewed(
        self, conn: asyncpg.Connection, record: Record, ev: ReviewCompleted
    ) -> None:
        if ev.decision == "ineligible":
            await store.set_case(conn, ev.case_id, open=False)


async def apply_update(
    conn: asyncpg.Connection,
    case_id: str,
    before: domain.StoredReferral | domain.CaseToEnd,
    update: domain.CaseUpdate,
    *,
    cause: Record | None,
) -> None:
    """Store a case's new flags and emit its event: the one place a change of a case's
    state is written, whether the hospital's record or a coordinator caused it (a
    cancellation, either way, is recorded here)."""
    if (update.open, update.discharged) != (before.open, before.discharged):
        await store.set_case(conn, case_id, open=update.open, discharged=update.discharged)
    if update.event is not None:
        await emit(conn, update.event, service=SERVICE, cause=cause)
    if isinstance(update.event, CaseCancelled) and privacy.withdraws_consent(
        update.event.reason_code
    ):
        # PIPA: consent withdrawn, by the hospital or the centre: destroyed at once, in
        # the same transaction as the cancellation (after the note and the follow-up
        # were stored, so they go too).
        await destruction.destroy_case(conn, case_id, reason=privacy.CONSENT_WITHDRAWN)


class ExitError(Exception):
    """A coordinator's exit refused: `code` is the API's `error`, `status` its HTTP status."""

    STATUS = {"not-found": 404, "case-closed": 409, "invalid-request": 422}

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.status = self.STATUS.get(code, 409)


async def cancel_by_coordinator(
    conn: asyncpg.Connection,
    case_id: str,
    *,
    reason_code: str,
    note: str | None,
    actor: str,
    centre_id: str,
    now: datetime | None = None,
) -> domain.CaseUpdate:
    """A coordinator of the case's centre cancels it with a coded reason (and a note
    that stays here): audited in `case_exits`, and the same `CaseCancelled` as a
    hospital's withdrawal goes out, so every service closes its work and the hospital
    hears `cancelled` with the code. The caller checked the centre."""
    now = now or datetime.now(UTC)
    async with conn.transaction():
        case = await store.case_to_end(conn, case_id)
        if case is None:
            raise ExitError("not-found", "no such case")
        update = domain.coordinator_cancel(case, reason_code, now=now)
        if isinstance(update, domain.ExitRefused):
            raise ExitError(update.code, update.message)
        await store.add_exit(
            conn,
            case_id,
            action="cancel",
            reason_code=reason_code,
            note=note,
            actor=actor,
            centre_id=centre_id,
        )
        await apply_update(conn, case_id, case, update, cause=None)
    log.info("case cancelled by a coordinator", case_id=case_id, reason_code=reason_code)
    return update


async def reject_oversized(conn: asyncpg.Connection, record: Record, limit: int) -> None:
    """A hospital record too large to store: rejected if it names its referral, else dead-lettered."""
    where = domain.address(record.topic, record.key_text)
    if isinstance(where, domain.Unaddressed):
        raise PermanentError(f"record larger than {limit} bytes")
    hospital_id, referral_id = where
    await _Rejecter(conn, record, hospital_id, referral_id).send(
        "invalid-referral",
        CONTRACT_REASON,
        [FieldError(field="data", message=f"record larger than {limit} bytes", type="size")],
    )


async def emit_rejected(
    conn: asyncpg.Connection,
    record: Record,
    case_id: str,
    hospital_id: str,
    referral_id: str,
    reason_code: str,
    reason: str,
    errors: list[FieldError] | None = None,
) -> None:
    log.info("referral rejected", case_id=case_id, reason_code=reason_code)
    await emit(
        conn,
        CaseRejected(
            case_id=case_id,
            hospital_id=hospital_id,
            referral_id=referral_id,
            occurred_at=datetime.now(UTC),
            reason_code=reason_code,  # type: ignore[arg-type]
            reason=reason,
            errors=errors or [],
        ),
        service=SERVICE,
        cause=record,
    )


class _Rejecter:
    """Refusals of one broken hospital record: under the referral's case if it has one
    (the record is refused, the referral goes on), else a new, closed case rejected, so
    the hospital always gets an answer under its referral id."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        record: Record,
        hospital_id: str,
        referral_id: str,
    ) -> None:
        self._conn, self._record = conn, record
        self._hospital_id, self._referral_id = hospital_id, referral_id

    async def send(self, reason_code: str, reason: str, errors: list[FieldError]) -> None:
        existing = await store.find(self._conn, self._hospital_id, self._referral_id)
        if existing is not None:
            # The referral exists: the broken record is refused, the referral goes on.
            log.info("record refused", case_id=existing.case_id, reason_code=reason_code)
            await emit(
                self._conn,
                CaseSubmissionRefused(
                    case_id=existing.case_id,
                    hospital_id=self._hospital_id,
                    referral_id=self._referral_id,
                    occurred_at=datetime.now(UTC),
                    reason_code=reason_code,  # type: ignore[arg-type]
                    reason=reason,
                    errors=errors,
                ),
                service=SERVICE,
                cause=self._record,
            )
            return
        case_id = new_case_id()
        await store.add_case(self._conn, case_id, person_id=None, open=False)
        await store.add_referral(
            self._conn,
            hospital_id=self._hospital_id,
            referral_id=self._referral_id,
            case_id=case_id,
            content_hash=None,
            outcome=f"rejected:{reason_code}",
            submission=None,
        )
        await emit_rejected(
            self._conn,
            self._record,
            case_id,
            self._hospital_id,
            self._referral_id,
            reason_code,
            reason,
            errors,
        )


def new_case_id() -> str:
    return f"case-{uuid.uuid4()}"
