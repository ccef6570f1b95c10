"""services/scheduling/domain.py: what scheduling decides when a case event arrives or a
coordinator acts (holds, resumes, missed and unreachable visits), without any server."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from contracts.scheduling import CaseOnHold, CaseResumed, VisitDone, VisitScheduled
from services.lib.policy import SEOUL_TZ
from services.scheduling import domain
from services.scheduling.domain import (
    POST_DISCHARGE,
    PRE_DISCHARGE,
    CancelTasks,
    Case,
    CreateTask,
    Decision,
    Emit,
    ReplanTask,
    ResumeTask,
    SuspendTasks,
)

NOW = datetime(2025, 3, 1, 3, 0, tzinfo=UTC)  # 2025-03-01 12:00 in Seoul
HORIZON = 7
SOON = date(2025, 3, 4)  # within the horizon
LATER = date(2025, 3, 20)  # beyond it
DISCHARGED_AT = datetime(2025, 3, 2, 1, 30, tzinfo=UTC)


def case(**changes: object) -> Case:
    base = Case(
        case_id="case-1",
        hospital_id="police-hospital",
        referral_id="ref-1",
        centre_id="centre-songpa",
        priority="routine",
        expected_discharge_date=SOON,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def events(decision: Decision) -> list[object]:
    """The events of a decision, in order (emitted, or announced when a task is created)."""
    found: list[object] = []
    for step in decision.steps:
        if isinstance(step, Emit):
            found.append(step.event)
        elif isinstance(step, CreateTask) and step.if_created is not None:
            found.append(step.if_created)
    return found


def unchanged(before: Case, decision: Decision) -> bool:
    return decision.case == before and decision.steps == ()


def pre_window(expected: date) -> tuple[datetime, datetime]:
    return NOW, datetime.combine(expected, datetime.min.time(), tzinfo=SEOUL_TZ)


# --- the review ----------------------------------------------------------------------


@pytest.mark.parametrize("state", [{"closed": True}, {"reviewed": True}])
def test_review_of_a_closed_or_already_reviewed_case_changes_nothing(
    state: dict[str, bool],
) -> None:
    before = case(**state)
    assert unchanged(before, domain.on_review(before, eligible=True, now=NOW, horizon_days=7))


def test_an_ineligible_review_closes_the_case_and_cancels_its_tasks() -> None:
    decision = domain.on_review(case(), eligible=False, now=NOW, horizon_days=HORIZON)
    assert decision.case == case(closed=True)
    assert decision.steps == (CancelTasks(),)


def test_an_eligible_review_plans_the_pre_discharge_visit_and_announces_it_once_created() -> None:
    decision = domain.on_review(case(), eligible=True, now=NOW, horizon_days=HORIZON)
    start, end = pre_window(SOON)
    assert decision.case == case(reviewed=True)
    [create] = decision.steps
    assert isinstance(create, CreateTask)
    assert (create.kind, create.window_start, create.due_at) == (PRE_DISCHARGE, start, end)
    assert create.if_created == VisitScheduled(
        case_id="case-1",
        hospital_id="police-hospital",
        referral_id="ref-1",
        occurred_at=NOW,
        kind="pre-discharge",
        window_start=start,
        window_end=end,
    )


def test_an_eligible_review_of_a_discharge_beyond_the_horizon_plans_the_visit_on_hold() -> None:
    before = case(expected_discharge_date=LATER)
    decision = domain.on_review(before, eligible=True, now=NOW, horizon_days=HORIZON)
    start, end = pre_window(LATER)
    assert decision.case == replace(before, reviewed=True, hold_reason="discharge-postponed")
    assert decision.steps[:2] == (
        CreateTask(PRE_DISCHARGE, start, end),  # not announced: it waits on hold
        SuspendTasks((PRE_DISCHARGE,)),
    )
    [hold] = events(decision)
    assert isinstance(hold, CaseOnHold)
    assert hold.reason_code == "discharge-postponed"


def test_a_review_after_the_patient_went_home_records_the_pre_discharge_visit_as_missed() -> None:
    before = case(discharged_at=DISCHARGED_AT)
    decision = domain.on_review(before, eligible=True, now=NOW, horizon_days=HORIZON)
    assert decision.case == replace(before, reviewed=True)
    assert decision.steps[0] == CancelTasks((PRE_DISCHARGE,))
    [missed] = events(decision)
    assert isinstance(missed, VisitDone)
    assert (missed.kind, missed.outcome, missed.precautions_acknowledged) == (
        "pre-discharge",
        "missed",
        False,
    )


# --- a new discharge date ------------------------------------------------------------


def test_a_new_date_for_a_closed_case_changes_nothing() -> None:
    before = case(closed=True)
    decision = domain.on_discharge_date_changed(
        before, {PRE_DISCHARGE: "open"}, LATER, now=NOW, horizon_days=HORIZON
    )
    assert unchanged(before, decision)


def test_a_new_date_without_a_live_pre_discharge_visit_is_only_remembered() -> None:
    decision = domain.on_discharge_date_changed(
        case(), {POST_DISCHARGE: "open"}, LATER, now=NOW, horizon_days=HORIZON
    )
    assert decision == Decision(case(expected_discharge_date=LATER))


@pytest.mark.parametrize("status", ["open", "claimed"])
def test_a_new_date_within_the_horizon_moves_the_visit_and_announces_its_new_window(
    status: str,
) -> None:
    new_date = date(2025, 3, 6)
    decision = domain.on_discharge_date_changed(
        case(), {PRE_DISCHARGE: status}, new_date, now=NOW, horizon_days=HORIZON
    )
    start, end = pre_window(new_date)
    assert decision.case == case(expected_discharge_date=new_date)
    assert decision.steps[0] == ReplanTask(PRE_DISCHARGE, start, end)
    [scheduled] = events(decision)
    assert isinstance(scheduled, VisitScheduled)
    assert (scheduled.window_start, scheduled.window_end) == (start, end)


def test_a_new_date_beyond_the_horizon_puts_the_visit_on_hold() -> None:
    decision = domain.on_discharge_date_changed(
        case(), {PRE_DISCHARGE: "open"}, LATER, now=NOW, horizon_days=HORIZON
    )
    start, end = pre_window(LATER)
    assert decision.case == case(expected_discharge_date=LATER, hold_reason="discharge-postponed")
    assert decision.steps[:2] == (
        ReplanTask(PRE_DISCHARGE, start, end),
        SuspendTasks((PRE_DISCHARGE,)),
    )
    [hold] = events(decision)
    assert isinstance(hold, CaseOnHold)
    assert hold.reason_code == "discharge-postponed"


def test_a_date_postponed_again_beyond_the_horizon_only_moves_the_held_visit() -> None:
    before = case(expected_discharge_date=LATER, hold_reason="discharge-postponed")
    even_later = LATER + timedelta(days=10)
    decision = domain.on_discharge_date_changed(
        before, {PRE_DISCHARGE: "suspended"}, even_later, now=NOW, horizon_days=HORIZON
    )
    start, end = pre_window(even_later)
    assert decision == Decision(
        replace(before, expected_discharge_date=even_later),
        (ReplanTask(PRE_DISCHARGE, start, end),),
    )


def test_an_unreachable_person_whose_discharge_moves_beyond_the_horizon_is_held_for_the_date() -> (
    None
):
    before = case(hold_reason="unreachable")
    decision = domain.on_discharge_date_changed(
        before, {PRE_DISCHARGE: "suspended"}, LATER, now=NOW, horizon_days=HORIZON
    )
    assert decision.case.hold_reason == "discharge-postponed"
    assert [type(e) for e in events(decision)] == [CaseOnHold]


def test_a_date_back_within_the_horizon_resumes_the_visit_held_for_the_postponement() -> None:
    before = case(expected_discharge_date=LATER, hold_reason="discharge-postponed")
    decision = domain.on_discharge_date_changed(
        before, {PRE_DISCHARGE: "suspended"}, SOON, now=NOW, horizon_days=HORIZON
    )
    start, end = pre_window(SOON)
    assert decision.case == case(expected_discharge_date=SOON, hold_reason=None)
    assert decision.steps[:2] == (
        ReplanTask(PRE_DISCHARGE, start, end),
        ResumeTask(PRE_DISCHARGE, start, end),
    )
    resumed, scheduled = events(decision)
    assert isinstance(resumed, CaseResumed)
    assert resumed.kind == "pre-discharge"
    assert isinstance(scheduled, VisitScheduled)


def test_a_date_within_the_horizon_does_not_resume_a_visit_held_as_unreachable() -> None:
    before = case(hold_reason="unreachable")
    decision = domain.on_discharge_date_changed(
        before, {PRE_DISCHARGE: "suspended"}, SOON, now=NOW, horizon_days=HORIZON
    )
    assert decision.case == before
    assert not any(isinstance(step, ResumeTask) for step in decision.steps)
    assert [type(e) for e in events(decision)] == [VisitScheduled]


# --- readmission ---------------------------------------------------------------------


def test_a_readmission_of_a_closed_case_changes_nothing() -> None:
    before = case(closed=True, discharged_at=DISCHARGED_AT)
    assert unchanged(before, domain.on_readmitted(before, LATER, now=NOW))


def test_a_readmission_puts_the_post_discharge_visit_on_hold_until_the_next_discharge() -> None:
    before = case(discharged_at=DISCHARGED_AT, services_linked=True)
    decision = domain.on_readmitted(before, LATER, now=NOW)
    assert decision.case == replace(
        before, expected_discharge_date=LATER, discharged_at=None, hold_reason="readmitted"
    )
    assert decision.steps[0] == SuspendTasks((POST_DISCHARGE,))
    [hold] = events(decision)
    assert isinstance(hold, CaseOnHold)
    assert hold.reason_code == "readmitted"


# --- discharge -----------------------------------------------------------------------


def test_a_discharge_of_a_closed_case_changes_nothing() -> None:
    before = case(closed=True)
    assert unchanged(before, domain.on_discharged(before, {}, DISCHARGED_AT, now=NOW))


def test_a_discharge_before_the_pre_discharge_visit_records_it_as_missed() -> None:
    decision = domain.on_discharged(case(), {PRE_DISCHARGE: "claimed"}, DISCHARGED_AT, now=NOW)
    assert decision.case == case(discharged_at=DISCHARGED_AT)
    assert decision.steps[0] == CancelTasks((PRE_DISCHARGE,))
    [missed] = events(decision)
    assert isinstance(missed, VisitDone)
    assert missed.outcome == "missed"


def test_a_discharge_without_linked_services_waits_for_them() -> None:
    decision = domain.on_discharged(case(), {}, DISCHARGED_AT, now=NOW)
    assert decision == Decision(case(discharged_at=DISCHARGED_AT))


def test_a_discharge_with_linked_services_plans_the_post_discharge_visit_within_72_hours() -> None:
    before = case(services_linked=True)
    decision = domain.on_discharged(before, {}, DISCHARGED_AT, now=NOW)
    [create] = decision.steps
    assert isinstance(create, CreateTask)
    assert (create.kind, create.window_start, create.due_at) == (
        POST_DISCHARGE,
        DISCHARGED_AT,
        DISCHARGED_AT + timedelta(hours=72),
    )
    assert isinstance(create.if_created, VisitScheduled)
    assert create.if_created.kind == "post-discharge"


def test_a_discharge_leaves_a_live_post_discharge_visit_as_it_is() -> None:
    before = case(services_linked=True)
    decision = domain.on_discharged(before, {POST_DISCHARGE: "open"}, DISCHARGED_AT, now=NOW)
    assert decision == Decision(replace(before, discharged_at=DISCHARGED_AT))


def test_a_discharge_after_a_readmission_resumes_the_held_post_discharge_visit() -> None:
    before = case(services_linked=True, hold_reason="readmitted")
    decision = domain.on_discharged(before, {POST_DISCHARGE: "suspended"}, DISCHARGED_AT, now=NOW)
    assert decision.case == replace(before, discharged_at=DISCHARGED_AT, hold_reason=None)
    assert decision.steps[0] == ResumeTask(
        POST_DISCHARGE, DISCHARGED_AT, DISCHARGED_AT + timedelta(hours=72)
    )
    resumed, scheduled = events(decision)
    assert isinstance(resumed, CaseResumed)
    assert resumed.kind == "post-discharge"
    assert isinstance(scheduled, VisitScheduled)
    assert scheduled.window_start == DISCHARGED_AT


# --- services linked -----------------------------------------------------------------


def test_services_linked_for_a_closed_case_change_nothing() -> None:
    before = case(closed=True, discharged_at=DISCHARGED_AT)
    assert unchanged(before, domain.on_services_linked(before, now=NOW))


def test_services_linked_before_the_discharge_wait_for_it() -> None:
    assert domain.on_services_linked(case(), now=NOW) == Decision(case(services_linked=True))


def test_services_linked_while_on_hold_wait_for_the_hold_to_end() -> None:
    before = case(discharged_at=DISCHARGED_AT, hold_reason="readmitted")
    decision = domain.on_services_linked(before, now=NOW)
    assert decision == Decision(replace(before, services_linked=True))


def test_services_linked_for_a_patient_at_home_plan_the_post_discharge_visit() -> None:
    before = case(discharged_at=DISCHARGED_AT)
    decision = domain.on_services_linked(before, now=NOW)
    assert decision.case == replace(before, services_linked=True)
    [create] = decision.steps
    assert isinstance(create, CreateTask)
    assert (create.kind, create.window_start) == (POST_DISCHARGE, DISCHARGED_AT)


# --- closing -------------------------------------------------------------------------


def test_closing_marks_the_case_closed_and_cancels_every_live_task() -> None:
    assert domain.close(case()) == Decision(case(closed=True), (CancelTasks(),))


# --- failed contact attempts and reopening -------------------------------------------


def test_a_failed_contact_below_the_limit_changes_nothing_else() -> None:
    before = case()
    decision = domain.on_contact_failed(before, PRE_DISCHARGE, 2, max_attempts=3, now=NOW)
    assert unchanged(before, decision)


def test_the_last_failed_contact_puts_the_visit_on_hold_as_unreachable() -> None:
    before = case(discharged_at=DISCHARGED_AT)
    decision = domain.on_contact_failed(before, POST_DISCHARGE, 3, max_attempts=3, now=NOW)
    assert decision.case == replace(before, hold_reason="unreachable")
    assert decision.steps[0] == SuspendTasks((POST_DISCHARGE,))
    [hold] = events(decision)
    assert isinstance(hold, CaseOnHold)
    assert hold.reason_code == "unreachable"


@pytest.mark.parametrize(
    ("status", "hold_reason"),
    [("open", "unreachable"), ("suspended", "discharge-postponed"), ("suspended", None)],
)
def test_reopen_is_refused_unless_the_visit_is_on_hold_as_unreachable(
    status: str, hold_reason: str | None
) -> None:
    decision = domain.reopen(
        case(hold_reason=hold_reason),
        PRE_DISCHARGE,
        status,
        due_at=NOW + timedelta(days=1),
        window_start=NOW,
        now=NOW,
    )
    assert decision is None


def test_reopen_resumes_the_visit_in_its_window_and_announces_it_again() -> None:
    window_start, due_at = NOW - timedelta(hours=1), NOW + timedelta(days=1)
    decision = domain.reopen(
        case(hold_reason="unreachable"),
        PRE_DISCHARGE,
        "suspended",
        due_at=due_at,
        window_start=window_start,
        now=NOW,
    )
    assert decision is not None
    assert decision.case == case(hold_reason=None)
    assert decision.steps[0] == ResumeTask(PRE_DISCHARGE, window_start, due_at)
    resumed, scheduled = events(decision)
    assert isinstance(resumed, CaseResumed)
    assert isinstance(scheduled, VisitScheduled)
    assert (scheduled.window_start, scheduled.window_end) == (window_start, due_at)


def test_reopen_of_a_visit_without_a_window_start_announces_it_from_now() -> None:
    decision = domain.reopen(
        case(hold_reason="unreachable"),
        POST_DISCHARGE,
        "suspended",
        due_at=NOW + timedelta(days=1),
        window_start=None,
        now=NOW,
    )
    assert decision is not None
    assert decision.steps[0] == ResumeTask(POST_DISCHARGE, None, NOW + timedelta(days=1))
    _, scheduled = events(decision)
    assert isinstance(scheduled, VisitScheduled)
    assert scheduled.window_start == NOW
