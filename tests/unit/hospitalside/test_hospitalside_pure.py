"""services/lib/hospitalside without servers: the envelope a gateway puts on a hospital's
event, and a referral's timeline with its gaps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import hospital_v1 as hv1
from contracts.cloudevents import Envelope
from services.lib.hospitalside import publishing
from services.lib.hospitalside.timeline import Gap, StoredUpdate, gaps, latest, ordered
from services.lib.hospitalside.updates import updates_topics
from services.tools.simulators.referrals import FakeHospital

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _events(hospital_id: str) -> list[publishing.HospitalEvent]:
    submitted = hv1.ReferralSubmitted.model_validate(FakeHospital(hospital_id, seed=1).submission())
    rid = submitted.referral_id
    return [
        submitted,
        hv1.ReferralUpdated(
            referral_id=rid,
            hospital_id=hospital_id,
            updated_at=NOW,
            expected_discharge_date=NOW.date(),
        ),
        hv1.PatientDischarged(referral_id=rid, hospital_id=hospital_id, discharged_at=NOW),
        hv1.ReferralCancelled(
            referral_id=rid,
            hospital_id=hospital_id,
            cancelled_at=NOW,
            reason_code=hv1.CancelReason.TRANSFERRED,
        ),
    ]


@pytest.mark.parametrize("index", range(4))
def test_envelope_has_the_hospitals_own_source_and_the_contracts_type(index: int) -> None:
    event = _events("seoul-general")[index]
    env = publishing.envelope("seoul-general", event, now=NOW)
    headers = Envelope.from_headers(env.to_headers())  # what intake reads back
    assert headers.source == "hospital/seoul-general"
    assert hv1.INBOUND_TYPES[headers.type] is type(event)
    assert headers.subject == event.referral_id
    assert headers.time == NOW


def test_every_inbound_type_can_be_published() -> None:
    assert set(publishing.CE_TYPES.values()) == set(hv1.INBOUND_TYPES)


def test_an_event_of_another_hospital_is_refused() -> None:
    event = _events("seoul-general")[0]
    with pytest.raises(ValueError, match="hospital_id"):
        publishing.envelope("busan-central", event)


def test_each_event_gets_its_own_ce_id() -> None:
    event = _events("seoul-general")[0]
    first = publishing.envelope("seoul-general", event)
    second = publishing.envelope("seoul-general", event)
    assert first.id != second.id


def test_updates_topics_are_exactly_the_served_hospitals() -> None:
    assert updates_topics(["b-hosp", "a-hosp", "b-hosp"]) == [
        "hospital.a-hosp.updates",
        "hospital.b-hosp.updates",
    ]
    with pytest.raises(ValueError):
        updates_topics(["Not A Slug"])


def _update(sequence: int, status: str = "received") -> StoredUpdate:
    return StoredUpdate(
        referral_id="ref-1",
        sequence=sequence,
        status=status,
        business_status=status,
        reason_code=None,
        occurred_at=NOW,
        data={"details": {"n": sequence}},
    )


def test_timeline_orders_by_sequence_and_shows_each_gap() -> None:
    items = ordered([_update(5), _update(1), _update(2), _update(7)])
    assert items == [_update(1), _update(2), Gap(3, 4), _update(5), Gap(6, 6), _update(7)]
    assert [g.count for g in gaps([_update(5), _update(1), _update(2), _update(7)])] == [2, 1]


def test_timeline_missing_its_first_updates_starts_with_a_gap() -> None:
    assert ordered([_update(3)]) == [Gap(1, 2), _update(3)]


def test_timeline_keeps_the_first_copy_of_a_repeat() -> None:
    first, repeat = _update(1, "received"), _update(1, "accepted")
    assert ordered([first, repeat]) == [first]
    assert gaps([first, repeat]) == []


def test_latest_is_the_highest_sequence_even_across_a_gap() -> None:
    found = latest([_update(1), _update(4, "completed")])
    assert found is not None
    assert found.status == "completed"
    assert latest([]) is None
    assert _update(2).details == {"n": 2}
