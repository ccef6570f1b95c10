"""services/outcome/status_machine.py: what each referral's hospital hears, checked
against the FHIR Task table of the contract (revision 2), scenario by scenario and
with random sequences of internal events (hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.cases import CaseEvent
from contracts.fhir_task import TERMINAL, check_path, check_updates
from contracts.hospital_v1 import CancelReason, Status
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
)
from contracts.outcome import CaseClosed, CaseLinkDeclined
from contracts.reasons import REASONS
from contracts.referral import (
    CarePlanSet,
    CaseFailed,
    CaseWaitlisted,
    DeliveredLine,
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
from contracts.scheduling import CaseOnHold, CaseResumed, VisitDone, VisitScheduled
from services.outcome.status_machine import Case, Decision, decide

AT = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
CASE = "case-sm-0001"
POLICE = ("police-hospital", "ref-police-1")
SEVERANCE = ("severance", "ref-sev-1")


def ids(who: tuple[str, str] = POLICE) -> dict[str, Any]:
    return {"case_id": CASE, "hospital_id": who[0], "referral_id": who[1], "occurred_at": AT}


# --- one sample per event, per variant ---------------------------------------------------


def received(who: tuple[str, str] = POLICE) -> CaseReceived:
    return CaseReceived(
        **ids(who),
        submitted_at=AT,
        age_band="70-74",
        district="Songpa-gu",
        dong="Jamsil-dong",
        requested_services=["meal_delivery"],
        admission_date=date(2026, 2, 20),
        expected_discharge_date=date(2026, 3, 9),
        priority="routine",
        mobility="assisted",
        registered_disability=False,
        lives_alone=True,
        has_family_caregiver=False,
        uses_public_care=False,
        do_not_contact=False,
    )


def triaged() -> CaseAccepted:
    return CaseAccepted(
        **ids(),
        person_id="person-1",
        policy_year=2026,
        fee_support="full",
        centre_id="centre-songpa-gu",
        district="Songpa-gu",
        priority="routine",
        review_deadline=AT + timedelta(hours=72),
        expected_discharge_date=date(2026, 3, 9),
        requested_services=["meal_delivery"],
    )


def auto_rejected(code: str = "ineligible-age") -> CaseRejected:
    return CaseRejected(**ids(), reason_code=code, reason=f"because {code}")  # type: ignore[arg-type]


def reviewed(refusal: str | None = None) -> ReviewCompleted:
    if refusal is None:
        return ReviewCompleted(**ids(), decision="eligible")
    return ReviewCompleted(**ids(), decision="ineligible", reason_code=refusal)  # type: ignore[arg-type]


def scheduled(kind: str = "pre-discharge") -> VisitScheduled:
    return VisitScheduled(
        **ids(),
        kind=kind,  # type: ignore[arg-type]
        window_start=AT,
        window_end=AT + timedelta(days=2),
    )


def visited(kind: str = "pre-discharge", outcome: str = "done") -> VisitDone:
    return VisitDone(**ids(), kind=kind, outcome=outcome, precautions_acknowledged=True)  # type: ignore[arg-type]


def plan() -> CarePlanSet:
    return CarePlanSet(
        **ids(),
        lines=[PlanLine(service="meal_delivery", quantity=10, unit="per_meal", cost_krw=104_000)],
        total_krw=104_000,
        publicly_paid_krw=104_000,
        self_paid_krw=0,
        partial=False,
        paid_by="district",
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_696_000,
    )


PROVIDER = ProviderRef(id="demo-lunchbox", name=ProviderName(ko="가상 도시락", en="Fictional"))
MEALS = PlanLine(service="meal_delivery", quantity=10, unit="per_meal", cost_krw=104_000)


def ordered() -> ServicesOrdered:
    line = OrderedLine(
        **MEALS.model_dump(), line=1, provider=PROVIDER, planned_start=date(2026, 3, 9)
    )
    return ServicesOrdered(**ids(), lines=[line])


def started() -> ServicesStarted:
    return ServicesStarted(
        **ids(),
        line=1,
        service="meal_delivery",  # type: ignore[arg-type]
        provider=PROVIDER,
        started_on=date(2026, 3, 9),
    )


def delivered_line(units: int = 7) -> DeliveredLine:
    return DeliveredLine(
        **{**MEALS.model_dump(), "cost_krw": units * 10_400},
        line=1,
        provider=PROVIDER,
        planned_start=date(2026, 3, 9),
        started_on=date(2026, 3, 9) if units else None,
        ended_on=date(2026, 3, 16),
        delivered_units=units,
        outcome="partly-delivered" if units else "not-delivered",
        end_reason="refused",
        district_paid_krw=units * 10_400,
    )


def delivered(units: int = 7) -> ServicesDelivered:
    return ServicesDelivered(
        **ids(),
        lines=[delivered_line(units)],
        total_krw=units * 10_400,
        publicly_paid_krw=units * 10_400,
        self_paid_krw=0,
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_800_000 - units * 10_400,
    )


def hold(code: str) -> CaseOnHold:
    return CaseOnHold(**ids(), reason_code=code)  # type: ignore[arg-type]


def resumed(kind: str = "pre-discharge") -> CaseResumed:
    return CaseResumed(**ids(), kind=kind)  # type: ignore[arg-type]


def failed(code: str = "could-not-deliver") -> CaseFailed:
    return CaseFailed(**ids(), reason_code=code)  # type: ignore[arg-type]


def cancelled(code: str = "cancelled-by-hospital") -> CaseCancelled:
    return CaseCancelled(**ids(), reason_code=CancelReason(code))


def linked(who: tuple[str, str] = SEVERANCE) -> CaseLinked:
    return CaseLinked(**ids(who))


def repeat(who: tuple[str, str] = POLICE) -> CaseStatusRequested:
    return CaseStatusRequested(**ids(who))


def refused(
    who: tuple[str, str] = POLICE, code: str = "conflicting-duplicate"
) -> CaseSubmissionRefused:
    errors = (
        [FieldError(field="data", message="not JSON", type="envelope")]
        if code == "invalid-referral"
        else []
    )
    return CaseSubmissionRefused(**ids(who), reason_code=code, reason="refused", errors=errors)  # type: ignore[arg-type]


def closed() -> CaseClosed:
    return CaseClosed(
        **ids(),
        delivered=[],
        total_krw=0,
        publicly_paid_krw=0,
        self_paid_krw=0,
        annual_cap_krw=1_800_000,
        cap_remaining_krw=1_800_000,
        precautions_acknowledged=True,
    )


# --- a small driver: the case as outcome keeps it, the feeds as hospitals read them --------


@dataclass
class Run:
    """Events through `decide`, one at a time, the events outcome emits read back after
    (as care.cases would deliver them); every feed recorded as its hospital reads it."""

    case: Case = field(default_factory=lambda: Case(CASE))
    feeds: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)

    def __call__(self, *events: CaseEvent) -> Run:
        pending = list(events)
        while pending:
            event = pending.pop(0)
            decision = decide(self.case, event, now=AT + timedelta(minutes=len(self.decisions)))
            self.decisions.append(decision)
            self.case = decision.case
            for send in decision.sends:
                self.feeds.setdefault((send.hospital_id, send.referral_id), []).append(
                    {
                        "referral_id": send.referral_id,
                        "sequence": send.sequence,
                        **send.update.to_json(),
                    }
                )
            pending[:0] = decision.emits
        return self

    def trail(self, who: tuple[str, str] = POLICE) -> list[tuple[str, str]]:
        return [(u["status"], u["business_status"]) for u in self.feeds.get(who, [])]

    @property
    def refusals(self) -> list[Any]:
        return [r for d in self.decisions for r in d.refusals]

    def assert_contract(self) -> None:
        for who, updates in self.feeds.items():
            assert check_updates(updates) == [], (who, updates)
        assert check_path(u.status for u in self.case.path) == []
        for feed in self.case.feeds:
            assert feed.sequence == len(self.feeds.get(feed.key, []))
            assert feed.position == self.case.position, (feed, self.case.position)


# --- scenarios -----------------------------------------------------------------------------


def test_a_submission_is_received_then_triaged_then_accepted_by_the_review() -> None:
    run = Run()(received(), triaged(), reviewed())
    assert run.trail() == [
        ("received", "received"),
        ("received", "triaged"),
        ("accepted", "reviewed"),
    ]
    assert run.feeds[POLICE][1]["details"]["fee_support"] == "full"
    run.assert_contract()
    assert run.refusals == []


def test_the_whole_loop_to_completed_with_the_outcome_report() -> None:
    run = Run()(
        received(),
        triaged(),
        reviewed(),
        scheduled(),
        visited(),
        plan(),
        ServicesLinked(**ids()),
        scheduled("post-discharge"),
        visited("post-discharge"),
    )
    assert [s for s, _ in run.trail()] == [
        "received",
        "received",
        "accepted",
        "in-progress",
        "in-progress",
        "in-progress",
        "in-progress",
        "in-progress",
        "in-progress",
        "completed",
    ]
    report = run.feeds[POLICE][-1]["details"]["outcome_report"]
    assert report["services_delivered"][0]["service"] == "meal_delivery"
    assert any(isinstance(e, CaseClosed) for d in run.decisions for e in d.emits)
    run.assert_contract()
    assert run.refusals == []


ORDERED_LOOP: tuple[CaseEvent, ...] = (
    received(),
    triaged(),
    reviewed(),
    scheduled(),
    visited(),
    plan(),
    ordered(),
    scheduled("post-discharge"),
    started(),
)


def test_an_ordered_plan_completes_when_delivery_ends_after_the_visit() -> None:
    run = Run()(*ORDERED_LOOP, visited("post-discharge"))
    assert run.trail()[-1] == ("in-progress", "post-discharge-visit-done"), "waits for delivery"
    assert not any(isinstance(e, CaseClosed) for d in run.decisions for e in d.emits)
    run(delivered())
    assert run.trail()[-3:] == [
        ("in-progress", "post-discharge-visit-done"),
        ("in-progress", "services-delivered"),
        ("completed", "closed"),
    ]
    report = run.feeds[POLICE][-1]["details"]["outcome_report"]
    line = report["services_delivered"][0]
    assert (line["delivered_units"], line["outcome"], line["end_reason"]) == (
        7,
        "partly-delivered",
        "refused",
    )
    assert line["provider"]["id"] == "demo-lunchbox"
    assert (report["total_krw"], report["publicly_paid_krw"]) == (72_800, 72_800)
    assert report["care_precautions_acknowledged"] is True
    closes = [e for d in run.decisions for e in d.emits if isinstance(e, CaseClosed)]
    assert len(closes) == 1
    assert closes[0].delivered[0].delivered_units == 7
    run.assert_contract()
    assert run.refusals == []


def test_an_ordered_plan_completes_at_the_visit_when_delivery_ended_first() -> None:
    run = Run()(*ORDERED_LOOP, delivered())
    assert run.trail()[-1] == ("in-progress", "services-delivered"), "waits for the visit"
    run(visited("post-discharge"))
    assert run.trail()[-2:] == [
        ("in-progress", "post-discharge-visit-done"),
        ("completed", "closed"),
    ]
    assert run.trail().count(("in-progress", "services-started")) == 1
    report = run.feeds[POLICE][-1]["details"]["outcome_report"]
    assert report["services_delivered"][0]["delivered_units"] == 7
    run.assert_contract()
    assert run.refusals == []


def test_ordered_and_nothing_delivered_fails_could_not_deliver() -> None:
    nothing = CaseFailed(**ids(), reason_code="could-not-deliver", delivered=[delivered_line(0)])
    run = Run()(*ORDERED_LOOP[:-1], nothing, visited("post-discharge"))
    assert run.trail()[-1] == ("failed", "could-not-deliver")
    assert run.feeds[POLICE][-1]["details"]["services"][0]["outcome"] == "not-delivered"
    run.assert_contract()
    assert run.refusals == []


def test_automatic_rejection_comes_after_received_and_before_anything_else() -> None:
    run = Run()(received(), auto_rejected("outside-service-area"))
    assert run.trail() == [("received", "received"), ("rejected", "outside-service-area")]
    last = run.feeds[POLICE][-1]
    assert last["reason_ko"] == REASONS["outside-service-area"].ko
    run.assert_contract()


def test_without_consent_the_first_update_is_rejected() -> None:
    run = Run()(auto_rejected("missing-consent"))
    assert run.trail() == [("rejected", "missing-consent")]
    run.assert_contract()


def test_review_refusals_reject_before_acceptance_and_declining_cancels() -> None:
    for code in get_args(ReviewRefusal):
        run = Run()(received(), triaged(), reviewed(code))
        status = "cancelled" if code == "declined-by-patient" else "rejected"
        assert run.trail()[-1] == (status, code)
        assert run.feeds[POLICE][-1]["reason_ko"] == REASONS[code].ko
        run.assert_contract()


def test_a_patient_declining_after_acceptance_is_cancelled_declined_by_patient() -> None:
    run = Run()(received(), triaged(), reviewed(), scheduled(), cancelled("declined-by-patient"))
    assert run.trail()[-1] == ("cancelled", "declined-by-patient")
    assert "rejected" not in [s for s, _ in run.trail()]
    run.assert_contract()


def test_a_conflicting_resubmission_repeats_the_status_and_the_referral_goes_on() -> None:
    run = Run()(received(), triaged(), reviewed(), refused())
    last = run.feeds[POLICE][-1]
    assert (last["status"], last["business_status"], last["reason_code"]) == (
        "accepted",
        "submission-refused",
        "conflicting-duplicate",
    )
    assert last["reason_ko"] == REASONS["conflicting-duplicate"].ko
    assert run.case.current is not None
    assert run.case.current.business_status == "reviewed"  # nothing changed
    run(scheduled())
    assert run.trail()[-1] == ("in-progress", "pre-discharge-visit-scheduled")
    run.assert_contract()


def test_a_submission_under_a_finished_referral_repeats_the_terminal_status() -> None:
    run = Run()(received(), auto_rejected(), refused(), repeat())
    assert run.trail() == [
        ("received", "received"),
        ("rejected", "ineligible-age"),
        ("rejected", "submission-refused"),
        ("rejected", "ineligible-age"),
    ]
    run.assert_contract()


def test_a_broken_record_under_an_open_referral_is_refused_with_its_errors() -> None:
    run = Run()(received(), triaged(), refused(code="invalid-referral"))
    last = run.feeds[POLICE][-1]
    assert (last["status"], last["business_status"]) == ("received", "submission-refused")
    assert last["details"]["errors"][0]["field"] == "data"
    run.assert_contract()


def test_an_identical_resend_repeats_the_current_update() -> None:
    run = Run()(received(), triaged(), repeat())
    assert run.feeds[POLICE][-1] == {**run.feeds[POLICE][1], "sequence": 3}
    run.assert_contract()


def test_a_rejection_from_an_intake_before_revision_2_is_answered_as_a_refused_record() -> None:
    run = Run()(received(), triaged(), reviewed(), auto_rejected("conflicting-duplicate"))
    assert run.trail()[-1] == ("accepted", "submission-refused")
    run(auto_rejected("invalid-referral"))
    assert run.trail()[-1] == ("accepted", "submission-refused")
    run.assert_contract()
    assert run.refusals == []


def test_a_hold_before_the_review_ends_before_acceptance() -> None:
    """Readmitted before the review, the hold cleared by the discharge without an event of
    its own: the review's acceptance is preceded by the return to `received`."""
    run = Run()(received(), triaged(), hold("readmitted"), reviewed())
    assert run.trail()[2:] == [
        ("on-hold", "readmitted"),
        ("received", "resumed"),
        ("accepted", "reviewed"),
    ]
    assert run.feeds[POLICE][3]["details"] == {"hold_reason": "readmitted"}
    run.assert_contract()
    assert run.refusals == []


def test_a_hold_from_acceptance_resumes_to_accepted_then_moves_on() -> None:
    run = Run()(received(), triaged(), reviewed(), hold("discharge-postponed"))
    run(resumed(), scheduled())
    assert run.trail()[3:] == [
        ("on-hold", "discharge-postponed"),
        ("accepted", "resumed"),
        ("in-progress", "pre-discharge-visit-scheduled"),
    ]
    run.assert_contract()


def test_a_second_hold_keeps_the_status_the_first_left() -> None:
    run = Run()(received(), triaged(), reviewed(), scheduled(), hold("unreachable"))
    run(CaseWaitlisted(**ids(), retry_at=AT + timedelta(days=7)), plan())
    assert [s for s, _ in run.trail()][-3:] == ["on-hold", "on-hold", "in-progress"]
    run.assert_contract()
    assert run.refusals == []


def test_a_hold_ends_cancelled_or_failed() -> None:
    for end in (cancelled("deceased"), failed("cap-exhausted")):
        run = Run()(received(), triaged(), reviewed(), scheduled(), hold("unreachable"), end)
        assert run.trail()[-1][0] in {"cancelled", "failed"}
        run.assert_contract()


def test_a_finished_case_ignores_late_events() -> None:
    run = Run()(received(), triaged(), cancelled())
    before = run.trail()
    run(reviewed(), scheduled(), visited("post-discharge"), hold("unreachable"))
    assert run.trail() == before
    assert run.decisions[-1].ignored
    assert run.refusals == []


def test_a_referral_joining_the_case_is_brought_along_its_chain() -> None:
    run = Run()(received(), triaged(), reviewed(), scheduled(), hold("discharge-postponed"))
    run(linked())
    assert run.trail(SEVERANCE) == [
        ("received", "received"),
        ("received", "triaged"),
        ("accepted", "reviewed"),
        ("in-progress", "pre-discharge-visit-scheduled"),
        ("on-hold", "discharge-postponed"),
    ]
    assert run.feeds[SEVERANCE][0]["details"] == {"joined_existing_case": True}
    run(resumed(), visited())
    assert run.trail(SEVERANCE)[-2:] == run.trail(POLICE)[-2:]
    run.assert_contract()
    assert run.refusals == []


def test_joining_a_finished_case_is_declined() -> None:
    run = Run()(received(), triaged(), cancelled())
    decision = decide(run.case, linked(), now=AT)
    assert [type(e) for e in decision.emits] == [CaseLinkDeclined]
    assert decision.sends == ()


def test_an_illegal_move_is_refused_sends_nothing_and_changes_nothing() -> None:
    run = Run()(received(), triaged())
    case = run.case
    decision = decide(case, scheduled(), now=AT)  # in-progress before anyone accepted
    assert decision.sends == ()
    assert decision.case == case
    [refusal] = decision.refusals
    assert (refusal.from_status, refusal.to_status) == (Status.RECEIVED, Status.IN_PROGRESS)
    assert refusal.referral_id == POLICE[1]
    assert "in-progress may not follow received" in refusal.problem


def test_accepted_then_rejected_is_refused() -> None:
    """The revision 1 bug: a rejection after acceptance never reaches the hospital."""
    run = Run()(received(), triaged(), reviewed())
    decision = decide(run.case, reviewed("can-manage-alone"), now=AT)
    assert decision.sends == ()
    assert [(r.from_status, r.to_status) for r in decision.refusals] == [
        (Status.ACCEPTED, Status.REJECTED)
    ]


# --- property: any sequence of internal events ---------------------------------------------

REJECT_CODES = get_args(CaseRejected.model_fields["reason_code"].annotation)
HOLD_CODES = get_args(CaseOnHold.model_fields["reason_code"].annotation)
# Revision 2: a conflicting duplicate refuses a record, never a referral.
AUTO_REJECT_CODES = [c for c in REJECT_CODES if c != "conflicting-duplicate"]

ANY_EVENT: st.SearchStrategy[CaseEvent] = st.one_of(
    st.builds(received, st.sampled_from([POLICE, SEVERANCE])),
    st.just(triaged()),
    st.sampled_from(REJECT_CODES).map(auto_rejected),
    st.sampled_from([None, *get_args(ReviewRefusal)]).map(reviewed),
    st.sampled_from(["pre-discharge", "post-discharge"]).map(scheduled),
    st.builds(
        visited,
        st.sampled_from(["pre-discharge", "post-discharge"]),
        st.sampled_from(["done", "missed"]),
    ),
    st.just(plan()),
    st.just(ServicesLinked(**ids())),
    st.just(ordered()),
    st.just(started()),
    st.sampled_from([0, 7, 10]).map(delivered),
    st.sampled_from(HOLD_CODES).map(hold),
    st.sampled_from(["pre-discharge", "post-discharge"]).map(resumed),
    st.just(CaseWaitlisted(**ids(), retry_at=AT)),
    st.sampled_from(["could-not-deliver", "cap-exhausted"]).map(failed),
    st.sampled_from([c.value for c in CancelReason]).map(cancelled),
    st.just(closed()),
    st.sampled_from([POLICE, SEVERANCE]).map(linked),
    st.sampled_from([POLICE, SEVERANCE]).map(repeat),
    st.builds(
        refused,
        st.sampled_from([POLICE, SEVERANCE]),
        st.sampled_from(["conflicting-duplicate", "invalid-referral", "unknown-hospital"]),
    ),
    st.just(CaseLinkDeclined(**ids(SEVERANCE))),
    st.just(CaseDischarged(**ids(), discharged_at=AT)),
    st.just(CaseReadmitted(**ids(), expected_discharge_date=date(2026, 3, 20))),
    st.just(DischargeDateChanged(**ids(), expected_discharge_date=date(2026, 3, 12))),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ANY_EVENT, max_size=30))
def test_any_sequence_of_events_gives_every_hospital_a_legal_gap_free_feed(
    events: list[CaseEvent],
) -> None:
    run = Run()(*events)
    run.assert_contract()
    for refusal in run.refusals:
        # Refused moves are the table's illegal ones, and they leave nothing behind.
        assert refusal.problem


# --- property: the orders the services produce never need a refusal -----------------------


def _events(draw: st.DrawFn, pool: Sequence[CaseEvent], max_size: int) -> list[CaseEvent]:
    return draw(st.lists(st.sampled_from(list(pool)), max_size=max_size))


def _side_events() -> list[CaseEvent]:
    """What may come at any time: repeats, refused records, a joining referral, the
    hospital's follow-ups the hospital does not hear of."""
    return [
        repeat(),
        refused(),
        refused(code="invalid-referral"),
        linked(),
        repeat(SEVERANCE),
        refused(SEVERANCE),
        CaseDischarged(**ids(), discharged_at=AT),
        DischargeDateChanged(**ids(), expected_discharge_date=date(2026, 3, 12)),
    ]


@st.composite
def service_orders(draw: st.DrawFn) -> list[CaseEvent]:
    """A case's events in an order the services can produce: intake's receipt and triage
    (or rejection), holds and side events before the review, the review, then any of the
    in-progress steps, holds and resumes, then an end (or none), then late events."""
    start = draw(st.sampled_from(["triaged", "rejected", "no-consent"]))
    if start == "no-consent":
        events: list[CaseEvent] = [auto_rejected("missing-consent")]
    elif start == "rejected":
        events = [received(), auto_rejected(draw(st.sampled_from(AUTO_REJECT_CODES)))]
    else:
        events = [received(), triaged()]
        before_review = [*_side_events(), hold("readmitted"), resumed()]
        events += _events(draw, before_review, 4)
        review = draw(st.sampled_from([None, None, *get_args(ReviewRefusal), "cancel"]))
        if review == "cancel":
            events.append(cancelled(draw(st.sampled_from([c.value for c in CancelReason]))))
        else:
            events.append(reviewed(review))
        steps = [
            *_side_events(),
            scheduled(),
            scheduled("post-discharge"),
            visited(),
            visited(outcome="missed"),
            plan(),
            ServicesLinked(**ids()),
            ordered(),
            started(),
            *[hold(code) for code in HOLD_CODES],
            resumed(),
            resumed("post-discharge"),
            CaseWaitlisted(**ids(), retry_at=AT),
        ]
        events += _events(draw, steps, 12)
        end = draw(st.sampled_from(["none", "closed", "delivered", "failed", "cancelled"]))
        if end == "closed":
            events.append(visited("post-discharge"))
        elif end == "delivered":
            both: list[CaseEvent] = [delivered(), visited("post-discharge")]
            events += draw(st.permutations(both))
        elif end == "failed":
            events.append(failed(draw(st.sampled_from(["could-not-deliver", "cap-exhausted"]))))
        elif end == "cancelled":
            events.append(cancelled(draw(st.sampled_from([c.value for c in CancelReason]))))
    late = [*_side_events(), scheduled(), visited("post-discharge"), hold("unreachable")]
    events += _events(draw, late, 4)
    return events


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(service_orders())
def test_the_services_orders_reach_hospitals_without_a_refusal(events: list[CaseEvent]) -> None:
    run = Run()(*events)
    run.assert_contract()
    assert run.refusals == [], [(r.from_status, r.to_status, r.problem) for r in run.refusals]
    terminal = [s for s, _ in run.trail() if Status(s) in TERMINAL]
    if terminal:
        assert set(terminal) == {terminal[0]}, "a feed never leaves its terminal status"
    if "accepted" in [s for s, _ in run.trail()]:
        assert "rejected" not in [s for s, _ in run.trail()]
