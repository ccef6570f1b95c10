"""When a case's personal data must go (PIPA art. 21), decided without any I/O.

A closed case keeps its personal data for the retention period of the policy in
force on its closure date (Seoul time): `personal_data_retention_years` whole years
after the moment it closed. A withdrawal of consent ends it at once, whatever the
period (no law requires keeping a referral's personal data).

What "personal data" is in intake's store, and what stays: the fields below are
destroyed; the case row (ids, open/discharged flags, dates), the referrals' ids,
outcome and receipt time, the follow-ups' types and times, the exits' coded reasons
and the audits stay: pseudonymous facts for statistics.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from services.lib.policy import PolicyBook, PolicyNotFound
from services.lib.policy.rules import SEOUL_TZ, seoul_date

Reason = Literal["retention-expired", "consent-withdrawn"]
RETENTION_EXPIRED: Reason = "retention-expired"
CONSENT_WITHDRAWN: Reason = "consent-withdrawn"

# table.column holding personal data in intake's store, destroyed together.
PERSONAL_FIELDS: tuple[str, ...] = (
    "referrals.submission",  # the hospital's submission: name, birth date, phone, address
    "referrals.content_hash",  # a fingerprint of that submission
    "referral_events.data",  # the hospital's corrections, discharges, cancellations as sent
    "case_exits.note",  # what a coordinator typed when ending the case
    "persons.patient_key",  # the hash of name and birth date matching later referrals
)


def retention_years(policies: PolicyBook, closed_on: date) -> int:
    """The retention period for a case closed on `closed_on`: its policy's, or the
    longest of all when no policy was in force yet (keeping longer is the safe error)."""
    try:
        return policies.for_date(closed_on).personal_data_retention_years
    except PolicyNotFound:
        return max(p.personal_data_retention_years for p in policies.policies)


def destruction_due_at(closed_at: datetime, policies: PolicyBook) -> datetime:
    """The moment a case closed at `closed_at` is due for destruction."""
    closed = closed_at.astimezone(SEOUL_TZ)
    return add_years(closed, retention_years(policies, seoul_date(closed_at)))


def is_due(closed_at: datetime | None, policies: PolicyBook, now: datetime) -> bool:
    """Whether a case's retention period has ended (an open case's never has)."""
    return closed_at is not None and destruction_due_at(closed_at, policies) <= now


def add_years(moment: datetime, years: int) -> datetime:
    """`years` later on the calendar; 29 February becomes 28 February in other years."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:
        return moment.replace(year=moment.year + years, day=28)


def withdraws_consent(reason_code: str) -> bool:
    """A cancellation that ends the lawful basis at once (the hospital's or the centre's)."""
    return reason_code == "consent-withdrawn"
