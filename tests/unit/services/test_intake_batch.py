"""services/intake/batch.py: which submissions of a batch are decided together, and what
each does given the rows read for all of them, without any server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from contracts import hospital_v1 as hv1
from services.intake import batch, domain
from services.intake.domain import StoredReferral
from services.tools.simulators.referrals import FakeHospital

NOW = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)
HOSPITAL = FakeHospital("police-hospital", seed=7)


def item(index: int, referral_id: str, patient: str, **overrides: Any) -> batch.Item:
    overrides.setdefault("submitted_at", NOW - timedelta(hours=1))
    data = HOSPITAL.submission(referral_id=referral_id, **overrides)
    event = hv1.ReferralSubmitted.model_validate(data)
    reading = domain.Submitted(event=event, data=data, content_hash=domain.content_hash(data))
    return batch.Item(index, reading, patient)


def stored(item: batch.Item, *, open: bool = True, same: bool = True) -> StoredReferral:
    return StoredReferral(
        case_id=f"case-{item.index}",
        content_hash=item.reading.content_hash if same else "another",
        outcome="accepted",
        open=open,
        discharged=False,
    )


def test_distinct_referrals_and_patients_form_one_segment() -> None:
    items = [item(i, f"ref-{i}", f"patient-{i}") for i in range(4)]
    assert batch.segments(items) == [items]


def test_a_repeated_referral_starts_a_new_segment_at_its_second_copy() -> None:
    a, b, a_again, c = (
        item(0, "ref-a", "p-a"),
        item(1, "ref-b", "p-b"),
        item(2, "ref-a", "p-a2"),
        item(3, "ref-c", "p-c"),
    )
    assert batch.segments([a, b, a_again, c]) == [[a, b], [a_again, c]]


def test_a_second_referral_of_the_same_patient_starts_a_new_segment() -> None:
    first, other, second = item(0, "ref-1", "p-x"), item(1, "ref-2", "p-y"), item(2, "ref-3", "p-x")
    assert batch.segments([first, other, second]) == [[first, other], [second]]


def test_segments_keep_the_batch_order() -> None:
    items = [item(i, f"ref-{i % 3}", f"p-{i}") for i in range(7)]
    assert [i.index for run in batch.segments(items) for i in run] == list(range(7))


def test_decide_answers_stored_referrals_and_triages_only_the_new_ones() -> None:
    new, identical, conflicting, finished = (
        item(0, "ref-new", "p0"),
        item(1, "ref-same", "p1"),
        item(2, "ref-other", "p2"),
        item(3, "ref-done", "p3"),
    )
    existing = {
        identical.referral: stored(identical),
        conflicting.referral: stored(conflicting, same=False),
        finished.referral: stored(finished, open=False),
    }
    triaged: list[str] = []
    decision = domain.Refused("missing-consent", "no consent")

    def triage(reading: domain.Submitted) -> domain.Refused | domain.Triage:
        triaged.append(reading.event.referral_id)
        return decision

    decisions = batch.decide([new, identical, conflicting, finished], existing, triage)
    assert decisions == [
        batch.Reject(decision),
        batch.Again(existing[identical.referral], "identical"),
        batch.Again(existing[conflicting.referral], "conflicting"),
        batch.Again(existing[finished.referral], "finished"),
    ]
    assert triaged == ["ref-new"]


def test_decide_admits_what_triage_lets_through() -> None:
    let_through = domain.Triage(
        policy_year=2025,
        fee_support="none",
        centre_id="centre-1",
        age_band="75-84",
        review_deadline=NOW,
    )
    assert batch.decide([item(0, "ref-1", "p")], {}, lambda _: let_through) == [
        batch.Admit(let_through)
    ]
