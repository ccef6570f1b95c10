"""services/outcome/domain.py translate(): every case event as the hospital contract v1 says."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

import pytest

from contracts.cases import CASE_EVENT_TYPES, CaseEvent
from contracts.hospital_v1 import STATUSES_NEEDING_REASON, CancelReason, Status, StatusChanged
from contracts.intake import (
    CaseAccepted,
    CaseCancelled,
    CaseDischarged,
    CaseLinked,
    CaseReadmitted,
    CaseReceived,
    CaseRejected,
    CaseStatusRequested,
    CaseSubmissionRefused,
    DischargeDateChanged,
    FieldError,
    PersonalDataDestroyed,
)
from contracts.outcome import CaseClosed, CaseLinkDeclined
from contracts.reasons import REASONS
from contracts.referral import (
    CarePlanSet,
    CaseFailed,
    CaseWaitlisted,
    DeliveredLine,
    FeeSupportCorrected,
    OrderedLine,
    PlanLine,
    ProviderName,
    ProviderRef,
    ReviewCompleted,
    ReviewRefusal,
    ServicesDelivered,
    ServicesLinked,
    ServicesOrdered,
    ServicesStarted,
)
from contracts.scheduling import CaseOnHold, CaseResumed, VisitDone, VisitKind, VisitScheduled
from services.outcome.domain import Resume, Update, translate

AT = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)
COMMON: dict[str, Any] = {
    "case_id": "case-test-0001",
    "hospital_id": "police-hospital",
    "referral_id": "ref-test-0001",
    "occurred_at": AT,
}
LINES = [
    PlanLine(service="temporary_home_care", quantity=8, unit="per_30_min", cost_krw=135_520),
    PlanLine(service="meal_delivery", quantity=10, unit="per_meal", cost_krw=101_000),
]

PROVIDER = ProviderRef(
    id="demo-homecare-southeast", name=ProviderName(ko="가상 재가", en="Fictional Home Care")
)
ORDERED = [
    OrderedLine(**line.model_dump(), line=n, provider=PROVIDER, planned_start=date(2025, 3, 6))
    for n, line in enumerate(LINES, start=1)
]
DELIVERED = [
    DeliveredLine(
        **line.model_dump(),
        line=1,
        provider=PROVIDER,
        planned_start=date(2025, 3, 6),
        started_on=date(2025, 3, 6),
        ended_on=date(2025, 3, 9),
        delivered_units=8,
        outcome="delivered",
        district_paid_krw=line.cost_krw,
    )
    for line in LINES[:1]
]

REJECTED_CODES: tuple[str, ...] = get_args(CaseRejected.model_fields["reason_code"].annotation)
HOLD_CODES: tuple[str, ...] = get_args(CaseOnHold.model_fields["reason_code"].annotation)
FAIL_CODES: tuple[str, ...] = get_args(CaseFailed.model_fields["reason_code"].annotation)
REVIEW_CODES: tuple[str, ...] = get_args(ReviewRefusal)
VISIT_KINDS: tuple[str, ...] = get_args(VisitKind)


def received() -> CaseReceived:
    return CaseReceived(
        **COMMON,
        submitted_at=AT,
        age_band="70-74",
        district="Songpa-gu",
        dong="Jamsil-dong",
        requested_services=["temporary_home_care"],
        admission_date=date(2025, 2, 20),
        expected_discharge_date=date(2025, 3, 6),
        priority="routine",
        mobility="assisted",
        registered_disability=False,
        lives_alone=True,
        has_family_caregiver=False,
        uses_public_care=False,
        do_not_contact=False,
    )


def accepted() -> CaseAccepted:
    return CaseAccepted(
        **COMMON,
        person_id="person-test-0001",
        policy_year=2025,
        fee_support="self-pay",
        centre_id="centre-songpa-gu",
        district="Songpa-gu",
        priority="urgent",
        review_deadline=AT + timedelta(hours=24),
        expected_discharge_date=date(2025, 3, 6),
        requested_services=["temporary_home_care"],
    )


def rejected(code: str) -> CaseRejected:
    return CaseRejected(**COMMON, reason_code=code, reason=f"test reason for {code}")  # type: ignore[arg-type]


def scheduled(kind: str) -> VisitScheduled:
    return VisitScheduled(
        **COMMON,
        kind=kind,
        window_start=AT,
        window_end=AT + timedelta(hours=72),  # type: ignore[arg-type]
    )


def done(kind: str) -> VisitDone:
    return VisitDone(**COMMON, kind=kind, precautions_acknowledged=True, findings=["fall-risk"])  # type: ignore[arg-type]


def care_plan() -> CarePlanSet:
    return CarePlanSet(
        **COMMON,
        lines=LINES,
        total_krw=236_520,
        publicly_paid_krw=236_520,
        self_paid_krw=0,
        partial=False,
        paid_by="district",
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_563_480,
    )


def closed() -> CaseClosed:
    return CaseClosed(
        **COMMON,
        delivered=DELIVERED,
        total_krw=135_520,
        publicly_paid_krw=135_520,
        self_paid_krw=0,
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_664_480,
        precautions_acknowledged=True,
    )


def delivered() -> ServicesDelivered:
    return ServicesDelivered(
        **COMMON,
        lines=DELIVERED,
        total_krw=135_520,
        publicly_paid_krw=135_520,
        self_paid_krw=0,
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_664_480,
    )


def started() -> ServicesStarted:
    return ServicesStarted(
        **COMMON,
        line=1,
        service="temporary_home_care",  # type: ignore[arg-type]
        provider=PROVIDER,
        started_on=date(2025, 3, 6),
    )


def every_event() -> list[CaseEvent]:
    """At least one sample of every case event type, every reason code of each."""
    events: list[CaseEvent] = [received(), accepted()]
    events += [rejected(code) for code in REJECTED_CODES]
    events += [scheduled(kind) for kind in VISIT_KINDS] + [done(kind) for kind in VISIT_KINDS]
    events += [care_plan(), ServicesLinked(**COMMON), ServicesOrdered(**COMMON, lines=ORDERED)]
    events += [started(), delivered()]
    events += [CaseOnHold(**COMMON, reason_code=code) for code in HOLD_CODES]  # type: ignore[arg-type]
    events.append(CaseWaitlisted(**COMMON, retry_at=AT + timedelta(days=7)))
    events += [
        CaseFailed(**COMMON, reason_code=code, annual_cap_krw=1_800_000, cap_remaining_krw=0)  # type: ignore[arg-type]
        for code in FAIL_CODES
    ]
    events += [CaseCancelled(**COMMON, reason_code=code) for code in CancelReason]
    events.append(closed())
    events += [
        ReviewCompleted(**COMMON, decision="ineligible", reason_code=code)  # type: ignore[arg-type]
        for code in REVIEW_CODES
    ]
    events += [
        ReviewCompleted(**COMMON, decision="eligible"),
        CaseDischarged(**COMMON, discharged_at=AT),
        DischargeDateChanged(**COMMON, expected_discharge_date=date(2025, 3, 9)),
        CaseResumed(**COMMON, kind="pre-discharge"),
        CaseReadmitted(**COMMON, expected_discharge_date=date(2025, 3, 20)),
        CaseLinked(**COMMON),
        CaseLinkDeclined(**COMMON),
        CaseStatusRequested(**COMMON),
        CaseSubmissionRefused(**COMMON, reason_code="conflicting-duplicate", reason="used"),
        # A step inside the current status: the state machine answers it (issue 10).
        FeeSupportCorrected(**COMMON, fee_support="full", previous="self-pay"),
        # Says nothing to the hospital: other services delete their free text (issue 10).
        PersonalDataDestroyed(**COMMON, reason="retention-expired"),
    ]
    return events


def translated(event: CaseEvent) -> Update:
    update = translate(event)
    assert isinstance(update, Update), type(event).__name__
    return update


def updates() -> list[tuple[CaseEvent, Update]]:
    """Every sample event that translates to an update of its own."""
    return [(e, u) for e in every_event() if isinstance(u := translate(e), Update)]


def test_samples_cover_every_registered_case_event_type() -> None:
    assert {type(e).ce_type for e in every_event()} == set(CASE_EVENT_TYPES)


def test_case_received_is_received_received() -> None:
    update = translated(received())
    assert (update.status, update.business_status) == (Status.RECEIVED, "received")


def test_case_accepted_is_received_triaged_with_fee_support_centre_and_review_deadline() -> None:
    event = accepted()
    update = translated(event)
    # Revision 2: the automatic triage is a step of `received`; no person decided yet.
    assert (update.status, update.business_status) == (Status.RECEIVED, "triaged")
    assert update.details == {
        "fee_support": "self-pay",
        "centre_id": "centre-songpa-gu",
        "review_deadline": event.review_deadline.isoformat(),
    }


@pytest.mark.parametrize("code", REJECTED_CODES)
def test_case_rejected_is_rejected_with_its_reason_code(code: str) -> None:
    update = translated(rejected(code))
    assert update.status == Status.REJECTED
    assert update.business_status == code
    assert update.reason_code == code
    assert update.reason == f"test reason for {code}"


def test_case_rejected_with_field_errors_carries_them_in_details_errors() -> None:
    errors = [FieldError(field="patient.sex", message="Input should be 'F', 'M' or 'X'", type="x")]
    event = CaseRejected(**COMMON, reason_code="invalid-referral", reason="bad", errors=errors)
    assert translated(event).details == {"errors": [e.model_dump() for e in errors]}


@pytest.mark.parametrize("kind", VISIT_KINDS)
def test_visit_scheduled_is_in_progress_visit_scheduled_with_visit_window(kind: str) -> None:
    event = scheduled(kind)
    update = translated(event)
    assert update.status == Status.IN_PROGRESS
    assert update.business_status == f"{kind}-visit-scheduled"
    assert update.details["visit_window"] == {
        "start": event.window_start.isoformat(),
        "end": event.window_end.isoformat(),
    }


@pytest.mark.parametrize("kind", VISIT_KINDS)
def test_visit_done_is_in_progress_visit_done(kind: str) -> None:
    update = translated(done(kind))
    assert update.status == Status.IN_PROGRESS
    assert update.business_status == f"{kind}-visit-done"
    assert update.details["care_precautions_acknowledged"] is True


def test_care_plan_set_is_in_progress_care_plan_set_with_the_care_plan_summary() -> None:
    update = translated(care_plan())
    assert (update.status, update.business_status) == (Status.IN_PROGRESS, "care-plan-set")
    summary = update.details["care_plan"]
    assert summary["services"] == [line.model_dump(mode="json") for line in LINES]
    assert summary["total_krw"] == 236_520
    assert summary["paid_by"] == "district"
    assert summary["cap_remaining_krw"] == 1_563_480


def test_services_ordered_is_in_progress_services_ordered_with_provider_and_start() -> None:
    update = translated(ServicesOrdered(**COMMON, lines=ORDERED))
    assert (update.status, update.business_status) == (Status.IN_PROGRESS, "services-ordered")
    services = update.details["services"]
    assert [s["service"] for s in services] == ["temporary_home_care", "meal_delivery"]
    assert services[0]["provider"] == {
        "id": "demo-homecare-southeast",
        "name": {"ko": "가상 재가", "en": "Fictional Home Care"},
    }
    assert services[0]["planned_start"] == "2025-03-06"


def test_services_linked_by_an_earlier_referral_is_services_ordered() -> None:
    update = translated(ServicesLinked(**COMMON))
    assert (update.status, update.business_status) == (Status.IN_PROGRESS, "services-ordered")


def test_services_started_names_the_first_service() -> None:
    update = translated(started())
    assert (update.status, update.business_status) == (Status.IN_PROGRESS, "services-started")
    assert update.details["first_service"]["started_on"] == "2025-03-06"
    assert update.details["first_service"]["provider"]["id"] == "demo-homecare-southeast"


def test_services_delivered_carries_the_delivery() -> None:
    update = translated(delivered())
    assert (update.status, update.business_status) == (Status.IN_PROGRESS, "services-delivered")
    delivery = update.details["delivery"]
    assert delivery["services"][0]["delivered_units"] == 8
    assert delivery["services"][0]["district_paid_krw"] == 135_520
    assert (delivery["total_krw"], delivery["paid_by"]) == (135_520, "district")


def test_nothing_delivered_fails_with_each_line_and_its_reason() -> None:
    line = DELIVERED[0].model_copy(
        update={"delivered_units": 0, "outcome": "not-delivered", "end_reason": "refused"}
    )
    update = translated(CaseFailed(**COMMON, reason_code="could-not-deliver", delivered=[line]))
    assert (update.status, update.reason_code) == (Status.FAILED, "could-not-deliver")
    assert update.details["services"][0]["end_reason"] == "refused"


@pytest.mark.parametrize("code", HOLD_CODES)
def test_case_on_hold_is_on_hold_with_its_reason_code(code: str) -> None:
    update = translated(CaseOnHold(**COMMON, reason_code=code))  # type: ignore[arg-type]
    assert (update.status, update.business_status, update.reason_code) == (
        Status.ON_HOLD,
        code,
        code,
    )


def test_case_waitlisted_is_on_hold_waitlisted() -> None:
    update = translated(CaseWaitlisted(**COMMON, retry_at=AT + timedelta(days=7)))
    assert (update.status, update.business_status, update.reason_code) == (
        Status.ON_HOLD,
        "waitlisted",
        "waitlisted",
    )


@pytest.mark.parametrize("code", FAIL_CODES)
def test_case_failed_is_failed_with_its_reason_code(code: str) -> None:
    event = CaseFailed(**COMMON, reason_code=code)  # type: ignore[arg-type]
    update = translated(event)
    assert (update.status, update.business_status, update.reason_code) == (
        Status.FAILED,
        code,
        code,
    )


@pytest.mark.parametrize("code", list(CancelReason))
def test_case_cancelled_is_cancelled_with_its_reason_code(code: CancelReason) -> None:
    update = translated(CaseCancelled(**COMMON, reason_code=code))
    assert (update.status, update.business_status, update.reason_code) == (
        Status.CANCELLED,
        code.value,
        code.value,
    )


def test_case_closed_is_completed_closed_with_the_outcome_report() -> None:
    update = translated(closed())
    assert (update.status, update.business_status) == (Status.COMPLETED, "closed")
    report = update.details["outcome_report"]
    assert report["services_delivered"] == [line.model_dump(mode="json") for line in DELIVERED]
    line = report["services_delivered"][0]
    assert line["provider"]["id"] == "demo-homecare-southeast"
    assert (line["started_on"], line["ended_on"]) == ("2025-03-06", "2025-03-09")
    assert (line["delivered_units"], line["cost_krw"]) == (8, 135_520)
    assert (line["district_paid_krw"], line["self_paid_krw"]) == (135_520, 0)
    assert report["total_krw"] == 135_520
    assert report["care_precautions_acknowledged"] is True
    assert report["follow_up_advice"]


@pytest.mark.parametrize("code", [c for c in REVIEW_CODES if c != "declined-by-patient"])
def test_review_completed_ineligible_is_rejected_with_the_review_code(code: str) -> None:
    update = translated(ReviewCompleted(**COMMON, decision="ineligible", reason_code=code))  # type: ignore[arg-type]
    assert (update.status, update.business_status, update.reason_code) == (
        Status.REJECTED,
        code,
        code,
    )


def test_review_completed_declined_by_patient_is_cancelled() -> None:
    event = ReviewCompleted(**COMMON, decision="ineligible", reason_code="declined-by-patient")
    update = translated(event)
    assert (update.status, update.business_status, update.reason_code) == (
        Status.CANCELLED,
        "declined-by-patient",
        "declined-by-patient",
    )


def test_review_completed_eligible_is_accepted_reviewed() -> None:
    update = translated(ReviewCompleted(**COMMON, decision="eligible"))
    assert (update.status, update.business_status, update.reason_code) == (
        Status.ACCEPTED,
        "reviewed",
        None,
    )


def test_case_resumed_is_a_return_to_the_status_the_hold_left() -> None:
    step = translate(CaseResumed(**COMMON, kind="post-discharge"))
    assert step == Resume(details={"visit": "post-discharge"})


@pytest.mark.parametrize(
    "event",
    [
        CaseDischarged(**COMMON, discharged_at=AT),
        DischargeDateChanged(**COMMON, expected_discharge_date=date(2025, 3, 9)),
        CaseReadmitted(**COMMON, expected_discharge_date=date(2025, 3, 20)),
        CaseLinked(**COMMON),
        CaseLinkDeclined(**COMMON),
        CaseStatusRequested(**COMMON),
        CaseSubmissionRefused(**COMMON, reason_code="conflicting-duplicate", reason="used"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_events_that_are_no_step_of_their_own_translate_to_none(event: CaseEvent) -> None:
    # Joins, repeats and refused records depend on where a referral stands: the
    # status machine answers them (tests/unit/services/test_outcome_status_machine.py).
    assert translate(event) is None


def test_every_update_that_needs_a_reason_has_reason_code_reason_and_reason_ko() -> None:
    needing = [
        (type(event).__name__, update)
        for event, update in updates()
        if update.status in STATUSES_NEEDING_REASON
    ]
    without = [
        (name, u.status) for name, u in needing if not (u.reason_code and u.reason and u.reason_ko)
    ]
    # rejected x6 + review x3, on-hold x4, failed x2, cancelled x5 + declined-by-patient
    assert len(needing) == len(REJECTED_CODES) + 3 + len(HOLD_CODES) + 1 + len(FAIL_CODES) + 6
    assert without == []


def test_reason_ko_is_the_contract_tables_korean_text_wherever_there_is_a_reason() -> None:
    with_reason = [u for _, u in updates() if u.reason is not None]
    assert with_reason
    for update in with_reason:
        assert update.reason_code is not None
        assert update.reason_ko == REASONS[update.reason_code].ko


def test_every_contract_reason_code_is_in_the_bilingual_table() -> None:
    codes = {u.reason_code for _, u in updates() if u.reason_code}
    assert codes <= set(REASONS)
    assert set(REJECTED_CODES) | set(HOLD_CODES) | set(FAIL_CODES) <= set(REASONS)
    assert {c.value for c in CancelReason} <= set(REASONS)
    for row in REASONS.values():
        assert all((row.en, row.ko, row.label_en, row.label_ko)), row.code
        assert any("\uac00" <= ch <= "\ud7a3" for ch in row.ko), row.code  # Hangul


def test_every_update_builds_a_valid_status_changed() -> None:
    built = 0
    for event, update in updates():
        message = StatusChanged.model_validate(
            {
                "referral_id": event.referral_id,
                "case_id": event.case_id,
                "sequence": 1,
                "status": update.status,
                "business_status": update.business_status,
                "reason_code": update.reason_code,
                "reason": update.reason,
                "reason_ko": update.reason_ko,
                "occurred_at": event.occurred_at,
                "details": update.details,
            }
        )
        # And it survives the trip through JSON the hospital receives.
        assert StatusChanged.model_validate_json(message.model_dump_json()) == message
        built += 1
    # All but the seven events that are no step of their own, CaseResumed (a Resume),
    # FeeSupportCorrected (a step inside the current status, which the state machine builds)
    # and PersonalDataDestroyed (nothing the hospital hears of).
    assert built == len(every_event()) - 10


def test_every_contract_status_is_reachable_from_some_event() -> None:
    reached = {u.status for _, u in updates()}
    assert reached == set(Status)
