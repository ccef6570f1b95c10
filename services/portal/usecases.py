"""The portal's use cases: load state, decide (domain.py, the contract's models), and
write the portal's state plus the hospital event to the outbox in one transaction
(services/lib/hospitalside.publishing), so a referral is never marked sent without
its event, nor an event sent without its record, whether or not the broker is up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg
from pydantic import ValidationError

from contracts.hospital_v1 import (
    CancelReason,
    PatientDischarged,
    ReferralCancelled,
    ReferralUpdated,
)
from services.lib.hospitalside import publishing
from services.lib.hospitalside.timeline import latest
from services.lib.hospitalside.updates import referral_updates
from services.lib.runtime.logging import get_logger
from services.portal import domain, form, labels, store
from services.portal.users import User

log = get_logger(__name__)


class NotFound(Exception):
    """No such referral or draft for the user's hospital (a 404, whoever's it is)."""


@dataclass
class Outcome:
    """A use case's answer: done, or why not (messages by field, or an action error)."""

    errors: dict[str, str]
    referral_id: str | None = None
    draft_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


async def save_draft(
    pool: asyncpg.Pool, user: User, draft_id: int | None, values: form.Form
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        saved = await store.save_draft(
            conn, user.hospital_id, draft_id, dict(values), user.username
        )
    if saved is None:
        raise NotFound
    return saved


async def submit(
    pool: asyncpg.Pool,
    user: User,
    draft_id: int | None,
    values: form.Form,
    *,
    now: datetime | None = None,
) -> Outcome:
    """Validate the form with the contract's model and send it; a draft becomes the
    submitted referral. Nothing is sent when anything is wrong."""
    now = now or datetime.now(UTC)
    checked = form.check(values, hospital_id=user.hospital_id, submitted_at=now)
    if checked.submission is None:
        return Outcome(checked.errors, draft_id=draft_id)
    submission = checked.submission
    data = store.as_json(submission.model_dump_json())
    try:
        async with pool.acquire() as conn, conn.transaction():
            if draft_id is not None and await store.draft(conn, user.hospital_id, draft_id) is None:
                raise NotFound
            if await store.id_taken(conn, user.hospital_id, submission.referral_id):
                return _duplicate(draft_id)
            envelope = await publishing.enqueue(conn, user.hospital_id, submission, now=now)
            await store.mark_submitted(
                conn, user.hospital_id, draft_id, data, dict(values), user.username, now
            )
            await store.record_sent(
                conn,
                user.hospital_id,
                submission.referral_id,
                envelope.type,
                envelope.id,
                data,
                user.username,
            )
    except asyncpg.UniqueViolationError:
        return _duplicate(draft_id)  # a colleague sent the same number a moment earlier
    log.info("referral submitted", hospital_id=user.hospital_id, event_id=envelope.id)
    return Outcome({}, referral_id=submission.referral_id)


def _duplicate(draft_id: int | None) -> Outcome:
    return Outcome({"referral_id": labels.ACTION_ERRORS["duplicate-id"]}, draft_id=draft_id)


async def _act(
    pool: asyncpg.Pool,
    user: User,
    referral_id: str,
    action: domain.Action,
    build: Callable[[], publishing.HospitalEvent],
) -> Outcome:
    """Send one follow-up event of a submitted referral, if the rules allow it now."""
    async with pool.acquire() as conn, conn.transaction():
        # Locked: two clicks (or two colleagues) decide one after the other.
        if await store.submitted(conn, user.hospital_id, referral_id, lock=True) is None:
            raise NotFound
        current = latest(await referral_updates(conn, user.hospital_id, referral_id))
        sent = await store.sent_events(conn, user.hospital_id, referral_id)
        discharged = any(e.ce_type == publishing.CE_TYPES[PatientDischarged] for e in sent)
        refused = domain.refusal(action, current.status if current else None, discharged)
        if refused is not None:
            return Outcome({"action": labels.ACTION_ERRORS[refused]}, referral_id=referral_id)
        try:
            event = build()
        except ValidationError as exc:
            return Outcome(form.errors_by_field(exc), referral_id=referral_id)
        envelope = await publishing.enqueue(conn, user.hospital_id, event)
        await store.record_sent(
            conn,
            user.hospital_id,
            referral_id,
            envelope.type,
            envelope.id,
            store.as_json(event.model_dump_json()),
            user.username,
        )
    log.info("referral event sent", hospital_id=user.hospital_id, ce_type=envelope.type)
    return Outcome({}, referral_id=referral_id)


async def change_discharge_date(
    pool: asyncpg.Pool, user: User, referral_id: str, new_date: str
) -> Outcome:
    def build() -> ReferralUpdated:
        return ReferralUpdated.model_validate(
            {
                "referral_id": referral_id,
                "hospital_id": user.hospital_id,
                "updated_at": datetime.now(UTC).isoformat(),
                "expected_discharge_date": new_date or None,
            }
        )

    if not new_date:
        return Outcome({"expected_discharge_date": labels.REQUIRED}, referral_id=referral_id)
    try:
        date.fromisoformat(new_date)
    except ValueError:
        return Outcome(
            {"expected_discharge_date": labels.message("date_parsing")}, referral_id=referral_id
        )
    return await _act(pool, user, referral_id, "change-date", build)


async def record_discharge(
    pool: asyncpg.Pool, user: User, referral_id: str, discharged_at: str
) -> Outcome:
    moment = form.local_moment(discharged_at.strip()) if discharged_at.strip() else ""
    if not moment:
        return Outcome({"discharged_at": labels.REQUIRED}, referral_id=referral_id)

    def build() -> PatientDischarged:
        return PatientDischarged.model_validate(
            {"referral_id": referral_id, "hospital_id": user.hospital_id, "discharged_at": moment}
        )

    return await _act(pool, user, referral_id, "discharge", build)


async def cancel(
    pool: asyncpg.Pool, user: User, referral_id: str, reason_code: str, reason: str
) -> Outcome:
    if reason_code not in {c.value for c in CancelReason}:
        return Outcome({"reason_code": labels.message("enum")}, referral_id=referral_id)

    def build() -> ReferralCancelled:
        return ReferralCancelled.model_validate(
            {
                "referral_id": referral_id,
                "hospital_id": user.hospital_id,
                "cancelled_at": datetime.now(UTC).isoformat(),
                "reason_code": reason_code,
                "reason": reason,
            }
        )

    return await _act(pool, user, referral_id, "cancel", build)
