"""What every internal event on `care.cases` shares, and the registry of their types.

Internal events never carry personal data: only ids, an age band, district and
dong, service codes, dates, statuses and flags (see ../shared/domain.md).
The referral id is the hospital's opaque identifier, not personal data; carrying
it lets the outcome service answer the right hospital without another lookup.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

from contracts.hospital_v1 import HospitalId, ReferralId


class CaseEvent(BaseModel):
    # Readers are tolerant: services are deployed one at a time, so a field a newer
    # producer added must not break the consumers still running the previous version.
    # Unknown fields are dropped on reading; producers emit exactly the model's fields.
    model_config = ConfigDict(frozen=True, extra="ignore")

    ce_type: ClassVar[str]
    producer: ClassVar[str]

    case_id: str
    hospital_id: HospitalId
    referral_id: ReferralId
    occurred_at: AwareDatetime


CASE_EVENT_TYPES: dict[str, type[CaseEvent]] = {}


def register(model: type[CaseEvent]) -> type[CaseEvent]:
    """Class decorator: make an event type decodable by its `ce_type`."""
    if model.ce_type in CASE_EVENT_TYPES:
        raise ValueError(f"ce_type registered twice: {model.ce_type}")
    CASE_EVENT_TYPES[model.ce_type] = model
    return model


class UnknownEventType(ValueError):
    pass


def decode_case_event(ce_type: str, data: bytes) -> CaseEvent:
    """Parse a `care.cases` record; raises UnknownEventType or pydantic.ValidationError."""
    try:
        model = CASE_EVENT_TYPES[ce_type]
    except KeyError:
        raise UnknownEventType(f"unknown ce_type on care.cases: {ce_type}") from None
    return model.model_validate_json(data)
