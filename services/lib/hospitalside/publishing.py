"""Publishing a hospital's events through the gateway's outbox, exactly as a hospital
system would send them (contracts/hospital_v1.py, `../shared/hospital-contract-v1.md`):
on `hospital.<id>.referrals`, keyed by the referral id, CloudEvents binary mode with
the hospital's own `ce_source`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts import topics
from contracts.cloudevents import Envelope
from contracts.hospital_v1 import (
    INBOUND_TYPES,
    PatientDischarged,
    ReferralCancelled,
    ReferralSubmitted,
    ReferralUpdated,
)
from services.lib.runtime import outbox

HospitalEvent = ReferralSubmitted | ReferralUpdated | PatientDischarged | ReferralCancelled

# The contract's ce_type of each event model.
CE_TYPES: dict[type[HospitalEvent], str] = {
    model: ce_type  # type: ignore[misc]
    for ce_type, model in INBOUND_TYPES.items()
}


def source(hospital_id: str) -> str:
    """The hospital's CloudEvents source: the same one its own systems would use, so
    intake identifies the event by (source, ce_id) whoever sent it for the hospital."""
    topics.referrals(hospital_id)  # refuses an id that is not a hospital slug
    return f"hospital/{hospital_id}"


def envelope(hospital_id: str, event: HospitalEvent, *, now: datetime | None = None) -> Envelope:
    """The CloudEvents attributes of one hospital event (a fresh `ce_id`)."""
    if event.hospital_id != hospital_id:
        # A gateway serving several hospitals must never send one's referral as another's:
        # intake would reject it, and the wrong hospital would learn of the patient.
        raise ValueError("the event's hospital_id is not the hospital it is sent for")
    return Envelope.new(
        source=source(hospital_id),
        type=CE_TYPES[type(event)],
        subject=event.referral_id,
        time=now or datetime.now(UTC),
    )


async def enqueue(
    conn: asyncpg.Connection, hospital_id: str, event: HospitalEvent, *, now: datetime | None = None
) -> Envelope:
    """Write one hospital event to the outbox, inside the caller's transaction.

    It is published on `hospital.<hospital_id>.referrals` once the transaction commits
    and the broker takes it; until then it waits in the outbox (the broker may be down).
    Returns the envelope, whose `id` is the event's `ce_id`.
    """
    env = envelope(hospital_id, event, now=now)
    await outbox.enqueue_event(
        conn,
        topic=topics.referrals(hospital_id),
        key=event.referral_id,
        envelope=env,
        data=event,
    )
    return env
