"""Intake's use cases: decide about one hospital record, store, and emit case
events, all inside the caller's transaction.

Intake also reads care.cases, only to learn when a case closes: a later
referral of the same person then starts a new case instead of joining it, and
a hospital's follow-up for a closed case gets the current status again.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from pydantic import ValidationError

from contracts import hospital_v1 as hv1
from contracts.cloudevents import Envelope, EnvelopeError
from contracts.intake import (
    CaseAccepted,
    CaseCancelled,
    CaseDischarged,
    CaseLinked,
    CaseReadmitted,
    CaseReceived,
    CaseRejected,
    CaseStatusRequested,
    DischargeDateChanged,
    FieldError,
)
from contracts.outcome import CaseClosed, CaseLinkDeclined
from contracts.referral import CaseFailed, ReviewCompleted
from contracts.topics import CASES, hospital_of
from services.intake import domain, store
from services.lib.policy import PolicyBook, Registry
from services.lib.runtime.errors import PermanentError
from services.lib.runtime.events import CaseEventRouter, emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Record

log = get_logger(__name__)
SERVICE = "intake"
CONTRACT_REASON = "the record does not follow the hospital contract v1"


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
        hospital_id = hospital_of(record.topic)
        if hospital_id is None:
            raise PermanentError(f"intake does not read {record.topic}")
        referral_id = record.key_text
        if not referral_id or len(referral_id) > 64:
            raise PermanentError("record has no usable key: cannot tie it to a referral")
        reject = _Rejecter(conn, record, hospital_id, referral_id)

        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError as exc:
            await reject.invalid("headers", str(exc))
            return
        model = hv1.INBOUND_TYPES.get(envelope.type)
        if model is None:
            await reject.invalid("ce_type", "unknown event type")
            return
        try:
            # Decoded as UTF-8 first: json.loads would guess UTF-16/32 from raw bytes, but
            # JSON between systems is UTF-8 (RFC 8259, 8.1).
            text = record.value.decode("utf-8")
            data = json.loads(text, parse_constant=domain.refuse_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError: ValueError
            await reject.invalid("data", "not JSON")
            return
        if not isinstance(data, dict):
            await reject.invalid("data", "not a JSON object")
            return
        nul_at = domain.first_nul(data)
        if nul_at is not None:
            # PostgreSQL text cannot hold NUL; refuse it here rather than fail the insert.
            await reject.invalid(nul_at, "contains a NUL character")
            return
        try:
            # Strict: the JSON types of the contract, no coercion ("1" is not a household
            # size, 1 is not a consent); ISO 8601 strings are how JSON carries dates.
            event: Any = model.model_validate_json(text, strict=True)
        except ValidationError as exc:
            await reject.send("invalid-referral", CONTRACT_REASON, domain.field_errors(exc))
            return
        if isinstance(event, hv1.ReferralSubmitted):
            implausible = domain.implausible(event, policies=self._policies, now=datetime.now(UTC))
            if implausible:
                await reject.send("invalid-referral", CONTRACT_REASON, implausible)
                return
        if event.referral_id != referral_id:
            await reject.invalid("referral_id", "differs from the record key")
            return
        if event.hospital_id != hospital_id or not self._registry.is_registered(hospital_id):
            await reject.send(
                "unknown-hospital",
                "hospital_id is not the hospital this topic belongs to",
                [
                    FieldError(
                        field="hospital_id", message="does not match the topic", type="mismatch"
                    )
                ],
            )
            return
        if isinstance(event, hv1.ReferralSubmitted):
            await self._submitted(conn, record, event, data)
        else:
            await self._follow_up(conn, record, event, data)

    async def _submitted(
        self,
        conn: asyncpg.Connection,
        record: Record,
        sub: hv1.ReferralSubmitted,
        data: dict[str, Any],
    ) -> None:
        digest = domain.content_hash(data)
        now = datetime.now(UTC)
        existing = await store.find(conn, sub.hospital_id, sub.referral_id)
        if existing is not None and existing.content_hash is None:
            # Only a broken record was seen under this id (refused without content):
            # the corrected submission starts afresh, under a new case.
            await store.forget_referral(conn, sub.hospital_id, sub.referral_id)
            existing = None
        if existing is not None:
            if existing.content_hash == digest:
                log.info("identical re-submission", case_id=existing.case_id)
                await emit(
                    conn,
                    CaseStatusRequested(**_ids(existing.case_id, sub, now)),
                    service=SERVICE,
                    cause=record,
                )
            else:
                await emit_rejected(
                    conn,
                    record,
                    existing.case_id,
                    sub.hospital_id,
                    sub.referral_id,
                    "conflicting-duplicate",
                    "this referral_id was already used for a different submission",
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
                    conn, _received(case_id, sub, now, "unknown"), service=SERVICE, cause=record
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
            await emit(conn, CaseLinked(**_ids(open_case, sub, now)), service=SERVICE, cause=record)
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
        """A new case for an accepted submission: received, then accepted (triaged)."""
        await store.add_case(conn, case_id, person_id=person_id, open=True)
        await emit(
            conn, _received(case_id, sub, now, decision.age_band), service=SERVICE, cause=record
        )
        await emit(
            conn,
            CaseAccepted(
                **_ids(case_id, sub, now),
                person_id=person_id,
                policy_year=decision.policy_year,
                fee_support=decision.fee_support,  # type: ignore[arg-type]
                centre_id=decision.centre_id,
                district=sub.patient.address.district,
                priority=sub.priority,
                review_deadline=decision.review_deadline,
                expected_discharge_date=sub.expected_discharge_date,
                requested_services=list(sub.requested_services),
            ),
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
        if stored is None or stored["case_id"] != ev.case_id:
            return  # already moved: a redelivery
        sub = hv1.ReferralSubmitted.model_validate(stored["submission"])
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
        self, conn: asyncpg.Connection, record: Record, event: Any, data: dict[str, Any]
    ) -> None:
        existing = await store.find(conn, event.hospital_id, event.referral_id)
        if existing is None:
            # Nothing to tie it to yet. Dead-lettered, so an operator sees it and can
            # replay it once the submission has arrived.
            raise PermanentError("follow-up for a referral that was never submitted")
        await store.add_event(conn, existing.case_id, record.header("ce_type") or "", data)
        now = datetime.now(UTC)
        ids = _ids(existing.case_id, event, now)
        if not existing.open:
            # Closed (completed, cancelled, failed or refused): nothing changes, but the
            # hospital still gets an answer.
            await emit(conn, CaseStatusRequested(**ids), service=SERVICE, cause=record)
            return
        if isinstance(event, hv1.ReferralUpdated):
            if event.expected_discharge_date is None:
                return
            if existing.discharged:
                await store.set_case(conn, existing.case_id, discharged=False)
                await emit(
                    conn,
                    CaseReadmitted(**ids, expected_discharge_date=event.expected_discharge_date),
                    service=SERVICE,
                    cause=record,
                )
            else:
                await emit(
                    conn,
                    DischargeDateChanged(
                        **ids, expected_discharge_date=event.expected_discharge_date
                    ),
                    service=SERVICE,
                    cause=record,
                )
        elif isinstance(event, hv1.PatientDischarged):
            await store.set_case(conn, existing.case_id, discharged=True)
            await emit(
                conn,
                CaseDischarged(**ids, discharged_at=event.discharged_at),
                service=SERVICE,
                cause=record,
            )
        elif isinstance(event, hv1.ReferralCancelled):
            await store.set_case(conn, existing.case_id, open=False)
            await emit(
                conn,
                CaseCancelled(**ids, reason_code=event.reason_code),
                service=SERVICE,
                cause=record,
            )

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


async def reject_oversized(conn: asyncpg.Connection, record: Record, limit: int) -> None:
    """A hospital record too large to store: rejected if it names its referral, else dead-lettered."""
    hospital_id = hospital_of(record.topic)
    referral_id = record.key_text
    if hospital_id is None or not referral_id or len(referral_id) > 64:
        raise PermanentError(f"record larger than {limit} bytes")
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
    """Rejections of one hospital record: to the referral's case if it has one, else a new,
    closed case, so the hospital always gets an answer under its referral id."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        record: Record,
        hospital_id: str,
        referral_id: str,
    ) -> None:
        self._conn, self._record = conn, record
        self._hospital_id, self._referral_id = hospital_id, referral_id

    async def invalid(self, field: str, message: str) -> None:
        await self.send(
            "invalid-referral",
            CONTRACT_REASON,
            [FieldError(field=field, message=message, type="envelope")],
        )

    async def send(self, reason_code: str, reason: str, errors: list[FieldError]) -> None:
        existing = await store.find(self._conn, self._hospital_id, self._referral_id)
        if existing is None:
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
        else:
            case_id = existing.case_id
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


def _ids(case_id: str, event: Any, now: datetime) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "hospital_id": event.hospital_id,
        "referral_id": event.referral_id,
        "occurred_at": now,
    }


def _received(
    case_id: str, sub: hv1.ReferralSubmitted, now: datetime, age_band: str
) -> CaseReceived:
    patient = sub.patient
    return CaseReceived(
        **_ids(case_id, sub, now),
        submitted_at=sub.submitted_at,
        age_band=age_band,
        district=patient.address.district,
        dong=patient.address.dong,
        requested_services=list(sub.requested_services),
        admission_date=sub.admission_date,
        expected_discharge_date=sub.expected_discharge_date,
        priority=sub.priority,
        mobility=sub.mobility,
        registered_disability=patient.registered_disability,
        lives_alone=patient.lives_alone,
        has_family_caregiver=patient.has_family_caregiver,
        uses_public_care=patient.uses_public_care,
        do_not_contact=sub.do_not_contact,
    )


def new_case_id() -> str:
    return f"case-{uuid.uuid4()}"
