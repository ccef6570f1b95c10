"""Every message of the system with the channel it travels on: the source of the
generated JSON Schemas and AsyncAPI document."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

# Importing the producer modules registers their event types.
from contracts import hospital_v1, intake, outcome, referral, scheduling  # noqa: F401
from contracts.cases import CASE_EVENT_TYPES
from contracts.escalations import TaskOverdue
from contracts.topics import CASES, ESCALATIONS


@dataclass(frozen=True)
class Message:
    ce_type: str
    model: type[BaseModel]
    channel: str  # a topic name, or a pattern with {hospital_id}
    producer: str  # "hospital" or the service that writes it


def all_messages() -> list[Message]:
    messages = [
        Message(ce_type, model, "hospital.{hospital_id}.referrals", "hospital")
        for ce_type, model in hospital_v1.INBOUND_TYPES.items()
    ]
    messages.append(
        Message(
            hospital_v1.STATUS_CHANGED,
            hospital_v1.StatusChanged,
            "hospital.{hospital_id}.updates",
            "outcome",
        )
    )
    messages.extend(
        Message(ce_type, model, CASES, model.producer)
        for ce_type, model in sorted(CASE_EVENT_TYPES.items())
    )
    messages.append(Message(TaskOverdue.ce_type, TaskOverdue, ESCALATIONS, "tasks"))
    return messages
