"""Every topic name and partition count, in one place.

Topics are always created up front with their partition count: a subscriber
naming a missing topic would otherwise auto-create it with the broker's default.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.hospital_v1 import HOSPITAL_ID_PATTERN

CASES = "care.cases"
# Raised for operators and coordinators when a task passes its deadline; never sent to hospitals.
ESCALATIONS = "care.escalations"

CASES_PARTITIONS = 12
HOSPITAL_PARTITIONS = 3
DLQ_PARTITIONS = 1
ESCALATIONS_PARTITIONS = 3

_HOSPITAL_TOPIC = re.compile(
    r"^hospital\.(?P<hospital>[a-z0-9-]{2,40})\.(?P<kind>referrals|updates)$"
)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


def referrals(hospital_id: str) -> str:
    """The topic a hospital writes its referral events to."""
    _check_hospital_id(hospital_id)
    return f"hospital.{hospital_id}.referrals"


def updates(hospital_id: str) -> str:
    """The topic only this hospital reads its status updates from."""
    _check_hospital_id(hospital_id)
    return f"hospital.{hospital_id}.updates"


def dead_letters(topic: str) -> str:
    """Dead letters stay beside their source, so a hospital's stay with that hospital."""
    return f"{topic}.dlq"


def hospital_of(topic: str) -> str | None:
    """The hospital a `hospital.<id>.*` topic belongs to, or None for other topics."""
    match = _HOSPITAL_TOPIC.fullmatch(topic)
    return match.group("hospital") if match else None


def all_topics(hospital_ids: Iterable[str]) -> list[TopicSpec]:
    """Every topic the system needs for these hospitals, dead-letter topics included."""
    specs = [TopicSpec(CASES, CASES_PARTITIONS), TopicSpec(ESCALATIONS, ESCALATIONS_PARTITIONS)]
    for hospital_id in sorted(set(hospital_ids)):
        specs.append(TopicSpec(referrals(hospital_id), HOSPITAL_PARTITIONS))
        specs.append(TopicSpec(updates(hospital_id), HOSPITAL_PARTITIONS))
        specs.append(TopicSpec(dead_letters(referrals(hospital_id)), DLQ_PARTITIONS))
    specs.append(TopicSpec(dead_letters(CASES), DLQ_PARTITIONS))
    return specs


def _check_hospital_id(hospital_id: str) -> None:
    if not re.fullmatch(HOSPITAL_ID_PATTERN, hospital_id):
        raise ValueError(f"not a hospital id: {hospital_id!r} (expected [a-z0-9-]{{2,40}})")
