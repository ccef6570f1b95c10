"""Intake's use cases: decide about one hospital record, store, and emit case
events, all inside the caller's transaction."""

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
    CaseReceived,
    CaseRejected,
    CaseResubmitted,
    DischargeDateChanged,
    FieldError,
)
from contracts.topics import hospital_of
from services.intake import domain, store
from services.policy import PolicyBook, Registry
from services.runtime.errors import PermanentError
from services.runtime.events import emit
from services.runtime.logging import get_logger
from services.runtime.pipeline import Record

log = get_logger(__name__)
SERVICE = "intake"


class Intake:
    def __init__(self, *, policies: PolicyBook, registry: Registry) -> None:
        self._policies = policies
        self._registry = registry

    async def handle(self, conn: asyncpg.Connection, record: Record) -> None:
        hospital_id = hospital_of(record.topic)
        if hospital_id is None:
            raise PermanentError(f"intake does not read {record.topic}")
        referral_id = record.key_text
        if not referral_id or len(referral_id) > 64:
            raise PermanentError("record has no usable key: cannot tie it to a referral")

        try:
            envelope = Envelope.from_headers(record.headers)
        except EnvelopeError as exc:
            await self._reject_invalid(conn, record, hospital_id, referral_id, "headers", str(exc))
            return
        model = hv1.INBOUND_TYPES.get(envelope.type)
        if model is None:
            await self._reject_invalid(
                conn, record, hospital_id, referral_id, "ce_type", "unknown event type"
            )
            return
        try:
            data = json.loads(record.value)
        except (UnicodeDecodeError, json.JSONDecodeError):
            await self._reject_invalid(conn, record, hospital_id, referral_id, "data", "not JSON")
            return
        try:
            event = model.model_validate(data)
        except ValidationError as exc:
            await self._reject(
                conn,
                record,
                hospital_id,
                referral_id,
                "invalid-referral",
                "the record does not follow the hospital contract v1",
                domain.field_errors(exc),
            )
            return
        if getattr(event, "referral_id", None) != referral_id:
            await self._reject_invalid(
                conn, record, hospital_id, referral_id, "referral_id", "differs from the record key"
            )
            return
        if getattr(event, "hospital_id", None) != hospital_id or not self._registry.is_registered(
            hospital_id
        ):
            await self._reject(
                conn,
                record,
                hospital_id,
                referral_id,
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
        existing = await store.find(conn, sub.hospital_id, sub.referral_id)
        now = datetime.now(UTC)
        if existing is not None:
            if existing.content_hash == digest:
                log.info("identical re-submission", case_id=existing.case_id)
                await emit(
                    conn,
                    CaseResubmitted(
                        case_id=existing.case_id,
                        hospital_id=sub.hospital_id,
                        referral_id=sub.referral_id,
                        occurred_at=now,
                    ),
                    service=SERVICE,
                    cause=record,
                )
            else:
                await self._emit_rejected(
                    conn,
                    record,
                    existing.case_id,
                    sub.hospital_id,
                    sub.referral_id,
                    "conflicting-duplicate",
                    "this referral_id was already used for a different submission",
                    [],
                )
            return

        case_id = new_case_id()
        decision = domain.triage(sub, policies=self._policies, registry=self._registry)
        patient = sub.patient
        accepted = isinstance(decision, domain.Triage)
        await store.insert(
            conn,
            hospital_id=sub.hospital_id,
            referral_id=sub.referral_id,
            case_id=case_id,
            content_hash=digest,
            outcome=(
                f"rejected:{decision.reason_code}"
                if isinstance(decision, domain.Refused)
                else "accepted"
            ),
            # Personal data is kept only for cases we work on.
            submission=data if accepted else None,
        )
        base = {"case_id": case_id, "hospital_id": sub.hospital_id, "referral_id": sub.referral_id}
        await emit(
            conn,
            CaseReceived(
                **base,
                occurred_at=now,
                submitted_at=sub.submitted_at,
                age_band=(decision.age_band if isinstance(decision, domain.Triage) else "unknown"),
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
            ),
            service=SERVICE,
            cause=record,
        )
        if isinstance(decision, domain.Refused):
            await self._emit_rejected(
                conn,
                record,
                case_id,
                sub.hospital_id,
                sub.referral_id,
                decision.reason_code,
                decision.reason,
                [],
            )
            return
        await emit(
            conn,
            CaseAccepted(
                **base,
                occurred_at=now,
                person_id=await store.person_for(
                    conn, domain.patient_key(sub), f"person-{uuid.uuid4()}"
                ),
                policy_year=decision.policy_year,
                fee_support=decision.fee_support,  # type: ignore[arg-type]
                centre_id=decision.centre_id,
                district=patient.address.district,
                priority=sub.priority,
                review_deadline=decision.review_deadline,
                expected_discharge_date=sub.expected_discharge_date,
                requested_services=list(sub.requested_services),
            ),
            service=SERVICE,
            cause=record,
        )
        log.info("referral accepted", case_id=case_id, fee_support=decision.fee_support)

    async def _follow_up(
        self, conn: asyncpg.Connection, record: Record, event: Any, data: dict[str, Any]
    ) -> None:
        existing = await store.find(conn, event.hospital_id, event.referral_id)
        if existing is None or existing.outcome != "accepted":
            # Nothing to correct: an unknown or refused referral. Dead-lettered, so an
            # operator sees it and can replay it if the submission arrives later.
            raise PermanentError("follow-up for a referral without an accepted case")
        await store.add_event(conn, existing.case_id, record.header("ce_type") or "", data)
        base = {
            "case_id": existing.case_id,
            "hospital_id": event.hospital_id,
            "referral_id": event.referral_id,
            "occurred_at": datetime.now(UTC),
        }
        if existing.closed:
            log.info("follow-up for a closed case kept, nothing to do", case_id=existing.case_id)
            return
        if isinstance(event, hv1.ReferralUpdated):
            if event.expected_discharge_date is not None:
                await emit(
                    conn,
                    DischargeDateChanged(
                        **base, expected_discharge_date=event.expected_discharge_date
                    ),
                    service=SERVICE,
                    cause=record,
                )
        elif isinstance(event, hv1.PatientDischarged):
            await emit(
                conn,
                CaseDischarged(**base, discharged_at=event.discharged_at),
                service=SERVICE,
                cause=record,
            )
        elif isinstance(event, hv1.ReferralCancelled):
            await store.mark_closed(conn, existing.case_id)
            await emit(
                conn,
                CaseCancelled(**base, reason_code=event.reason_code),
                service=SERVICE,
                cause=record,
            )

    async def _reject_invalid(
        self,
        conn: asyncpg.Connection,
        record: Record,
        hospital_id: str,
        referral_id: str,
        field: str,
        message: str,
    ) -> None:
        await self._reject(
            conn,
            record,
            hospital_id,
            referral_id,
            "invalid-referral",
            "the record does not follow the hospital contract v1",
            [FieldError(field=field, message=message, type="envelope")],
        )

    async def _reject(
        self,
        conn: asyncpg.Connection,
        record: Record,
        hospital_id: str,
        referral_id: str,
        reason_code: str,
        reason: str,
        errors: list[FieldError],
    ) -> None:
        existing = await store.find(conn, hospital_id, referral_id)
        if existing is None:
            case_id = new_case_id()
            await store.insert(
                conn,
                hospital_id=hospital_id,
                referral_id=referral_id,
                case_id=case_id,
                content_hash=None,
                outcome=f"rejected:{reason_code}",
                submission=None,
            )
        else:
            case_id = existing.case_id
        await self._emit_rejected(
            conn, record, case_id, hospital_id, referral_id, reason_code, reason, errors
        )

    async def _emit_rejected(
        self,
        conn: asyncpg.Connection,
        record: Record,
        case_id: str,
        hospital_id: str,
        referral_id: str,
        reason_code: str,
        reason: str,
        errors: list[FieldError],
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
                errors=errors,
            ),
            service=SERVICE,
            cause=record,
        )


def new_case_id() -> str:
    return f"case-{uuid.uuid4()}"
