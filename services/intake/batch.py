"""Pure decisions about a batch of hospital submissions, for the set-based path
(`submissions.BatchedIntake`): which records can be decided together, and what each
one does given the rows read for all of them at once. No I/O.

A *segment* is a run of consecutive submissions in which no referral and no
patient appears twice: each is then decided on the state read before the segment,
exactly as one record at a time would decide it. A repeated referral or patient
starts a new segment, so it sees what the earlier one wrote (a re-sent referral is
then a repeat, a second referral of a patient joins the first one's case).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from services.intake import domain

ReferralKey = tuple[str, str]  # (hospital_id, referral_id)


@dataclass(frozen=True)
class Item:
    """One claimed submission of the batch: its place in the batch and what it says."""

    index: int
    reading: domain.Submitted
    patient_key: str

    @property
    def referral(self) -> ReferralKey:
        return (self.reading.event.hospital_id, self.reading.event.referral_id)


@dataclass(frozen=True)
class Again:
    """A submission under a referral id intake already holds (identical, or refused)."""

    existing: domain.StoredReferral
    repeat: domain.Repeat


@dataclass(frozen=True)
class Reject:
    """Refused by the automatic rules: a closed case, no personal data kept."""

    decision: domain.Refused


@dataclass(frozen=True)
class Admit:
    """Let through: joins the person's open case, or opens a new one."""

    decision: domain.Triage


Decision = Again | Reject | Admit


def segments(items: Iterable[Item]) -> list[list[Item]]:
    """Consecutive runs of items in which no referral and no patient repeats."""
    runs: list[list[Item]] = []
    referrals: set[ReferralKey] = set()
    patients: set[str] = set()
    for item in items:
        if not runs or item.referral in referrals or item.patient_key in patients:
            runs.append([])
            referrals, patients = set(), set()
        runs[-1].append(item)
        referrals.add(item.referral)
        patients.add(item.patient_key)
    return runs


def decide(
    segment: Iterable[Item],
    existing: Mapping[ReferralKey, domain.StoredReferral],
    triage: Callable[[domain.Submitted], domain.Refused | domain.Triage],
) -> list[Decision]:
    """What each submission of a segment does, given the referrals already stored
    (read for the whole segment at once): the same rules as one record at a time."""
    decisions: list[Decision] = []
    for item in segment:
        stored = existing.get(item.referral)
        if stored is not None:
            decisions.append(Again(stored, domain.repeat_of(stored, item.reading.content_hash)))
            continue
        decision = triage(item.reading)
        decisions.append(
            Reject(decision) if isinstance(decision, domain.Refused) else Admit(decision)
        )
    return decisions
