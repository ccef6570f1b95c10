"""Pure visit rules: windows, postponement, holds, resumes, missed visits and contact
attempts.

Each `on_*` function takes the case as stored and what happened, and returns a
`Decision`: the case as it is to be stored and the steps on its visit tasks and
events to emit, in order. The use cases load the state, call one of these and
write the decision in the handler's transaction; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from contracts.cases import CaseEvent
from contracts.scheduling import CaseOnHold, CaseResumed, VisitDone, VisitKind, VisitScheduled
from services.lib.policy import SEOUL_TZ, Findings
from services.lib.policy.deadlines import DayRule, DeadlineRule, DeadlineRules

# The programme's rules (domain.md), for callers that have no policy year to go by; the
# use cases pass the rules of the case's policy year (`deadlines` in its policy file).
PROGRAMME_RULES = DeadlineRules()
PRE_DISCHARGE = "pre-discharge-visit"
POST_DISCHARGE = "post-discharge-visit"
TASK_KIND: dict[VisitKind, str] = {"pre-discharge": PRE_DISCHARGE, "post-discharge": POST_DISCHARGE}
VISIT_KIND: dict[str, VisitKind] = {v: k for k, v in TASK_KIND.items()}
HoldReason = Literal["discharge-postponed", "readmitted", "unreachable"]


def finding_problems(codes: Sequence[str], vocabulary: Findings) -> tuple[str, ...]:
    """What is wrong with a visit's findings, one message per finding, naming its field
    and never its value (a coordinator may have typed anything): each must be a code of
    the vocabulary. Empty: the findings may be recorded."""
    return tuple(
        f"findings.{index}: not a code of the findings vocabulary "
        f"(one of {', '.join(vocabulary.codes)})"
        for index in vocabulary.unknown(codes)
    )


def pre_discharge_window(
    now: datetime, expected_discharge: date, rule: DayRule = PROGRAMME_RULES.pre_discharge_visit
) -> tuple[datetime, datetime]:
    """From now until the policy's day (`deadlines.pre-discharge-visit`: the start of the
    expected discharge day, Seoul time): the visit or call must happen before the patient
    leaves.

    If that day is already here, the window is the rest of today: a call is still
    better than nothing, and the coordinator sees it as due at once.
    """
    end = rule.due(expected_discharge)
    if end <= now:
        end = datetime.combine(
            now.astimezone(SEOUL_TZ).date() + timedelta(days=1), time.min, tzinfo=SEOUL_TZ
        )
    return now, end


def post_discharge_window(
    discharged_at: datetime,
    priority: str = "routine",
    rule: DeadlineRule = PROGRAMME_RULES.post_discharge_visit,
) -> tuple[datetime, datetime]:
    """From the actual discharge until the policy's rule (`deadlines.post-discharge-visit`:
    72 clock hours) says."""
    return discharged_at, rule.due(discharged_at, priority)


def postponed_beyond_horizon(now: datetime, expected_discharge: date, horizon_days: int) -> bool:
    """A discharge moved further out than the horizon cannot keep a pre-discharge visit
    planned now: the case waits on hold until the date comes closer."""
    today = now.astimezone(SEOUL_TZ).date()
    return (expected_discharge - today).days > horizon_days


def unreachable(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts


# --- the case and what happens to it ------------------------------------------------


@dataclass(frozen=True)
class Case:
    """What scheduling keeps of a case (a row of its `cases` table)."""

    case_id: str
    hospital_id: str
    referral_id: str
    centre_id: str
    priority: str
    expected_discharge_date: date
    reviewed: bool = False
    discharged_at: datetime | None = None
    services_linked: bool = False
    hold_reason: str | None = None
    closed: bool = False
    # The policy year intake chose (CaseAccepted): its file's deadline rules date the
    # visits. None for a case accepted before scheduling kept it.
    policy_year: int | None = None


@dataclass(frozen=True)
class CreateTask:
    """A new visit task. `if_created` goes out only when the task is new: a live task
    of that kind (create is idempotent) was announced when it was created."""

    kind: str
    window_start: datetime
    due_at: datetime
    if_created: VisitScheduled | None = None


@dataclass(frozen=True)
class ReplanTask:
    """Move the live (or suspended) task's window; its status stays."""

    kind: str
    window_start: datetime
    due_at: datetime


@dataclass(frozen=True)
class ResumeTask:
    """Put the suspended task back in the queue with this window."""

    kind: str
    window_start: datetime | None
    due_at: datetime


@dataclass(frozen=True)
class SuspendTasks:
    kinds: tuple[str, ...]


@dataclass(frozen=True)
class CancelTasks:
    """Cancel live and suspended tasks of these kinds (None: of every kind)."""

    kinds: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Emit:
    event: CaseEvent


Step = CreateTask | ReplanTask | ResumeTask | SuspendTasks | CancelTasks | Emit


@dataclass(frozen=True)
class Decision:
    case: Case
    steps: tuple[Step, ...] = ()


# `live` in the functions below: the status ("open", "claimed" or "suspended") of the
# case's live visit task of each kind, by task kind; a kind without one is absent.


def on_review(
    case: Case,
    *,
    eligible: bool,
    now: datetime,
    horizon_days: int,
    rules: DeadlineRules = PROGRAMME_RULES,
) -> Decision:
    """The review's decision: plan the pre-discharge visit, or close an ineligible case.

    A patient already home has missed that visit; a discharge beyond the horizon
    puts the new visit on hold at once."""
    if case.closed or case.reviewed:
        return Decision(case)
    if not eligible:
        return close(case)
    case = replace(case, reviewed=True)
    if case.discharged_at is not None:
        return Decision(case, _missed_pre_visit(case, now))
    start, end = pre_discharge_window(now, case.expected_discharge_date, rules.pre_discharge_visit)
    if postponed_beyond_horizon(now, case.expected_discharge_date, horizon_days):
        held, hold_steps = _hold(case, "discharge-postponed", PRE_DISCHARGE, now)
        return Decision(held, (CreateTask(PRE_DISCHARGE, start, end), *hold_steps))
    scheduled = _scheduled(case, PRE_DISCHARGE, start, end, now)
    return Decision(case, (CreateTask(PRE_DISCHARGE, start, end, if_created=scheduled),))


def on_discharge_date_changed(
    case: Case,
    live: Mapping[str, str],
    expected: date,
    *,
    now: datetime,
    horizon_days: int,
    rules: DeadlineRules = PROGRAMME_RULES,
) -> Decision:
    """The hospital moved the discharge: the pre-discharge visit's window moves with it.

    Beyond the horizon the visit waits on hold; back within it, a visit held for
    that reason resumes."""
    if case.closed:
        return Decision(case)
    case = replace(case, expected_discharge_date=expected)
    pre = live.get(PRE_DISCHARGE)
    if pre is None:
        return Decision(case)
    start, end = pre_discharge_window(now, expected, rules.pre_discharge_visit)
    steps: list[Step] = [ReplanTask(PRE_DISCHARGE, start, end)]
    if postponed_beyond_horizon(now, expected, horizon_days):
        if case.hold_reason != "discharge-postponed":
            case, hold_steps = _hold(case, "discharge-postponed", PRE_DISCHARGE, now)
            steps += hold_steps
        return Decision(case, tuple(steps))
    if pre == "suspended" and case.hold_reason == "discharge-postponed":
        case = replace(case, hold_reason=None)
        steps += [ResumeTask(PRE_DISCHARGE, start, end), Emit(_resumed(case, PRE_DISCHARGE, now))]
    steps.append(Emit(_scheduled(case, PRE_DISCHARGE, start, end, now)))
    return Decision(case, tuple(steps))


def on_readmitted(case: Case, expected: date, *, now: datetime) -> Decision:
    """Back in hospital: the post-discharge visit waits until the next discharge."""
    if case.closed:
        return Decision(case)
    case = replace(case, expected_discharge_date=expected, discharged_at=None)
    held, steps = _hold(case, "readmitted", POST_DISCHARGE, now)
    return Decision(held, steps)


def on_discharged(
    case: Case,
    live: Mapping[str, str],
    discharged_at: datetime,
    *,
    now: datetime,
    rules: DeadlineRules = PROGRAMME_RULES,
) -> Decision:
    """Home: a pre-discharge visit still to do is missed; the post-discharge visit is
    planned (services linked) or resumes (after a readmission)."""
    if case.closed:
        return Decision(case)
    case = replace(case, discharged_at=discharged_at, hold_reason=None)
    steps: list[Step] = []
    if PRE_DISCHARGE in live:
        steps += _missed_pre_visit(case, now)
    post = live.get(POST_DISCHARGE)
    start, end = post_discharge_window(discharged_at, case.priority, rules.post_discharge_visit)
    if post == "suspended":
        steps += [
            ResumeTask(POST_DISCHARGE, start, end),
            Emit(_resumed(case, POST_DISCHARGE, now)),
            Emit(_scheduled(case, POST_DISCHARGE, start, end, now)),
        ]
    elif post is None and case.services_linked:
        steps.append(_plan_post_visit(case, discharged_at, now, rules))
    return Decision(case, tuple(steps))


def on_services_linked(
    case: Case, *, now: datetime, rules: DeadlineRules = PROGRAMME_RULES
) -> Decision:
    """Services are ordered (linked): a patient already home (and not on hold) gets the
    post-discharge visit now, otherwise it waits for the discharge."""
    if case.closed:
        return Decision(case)
    case = replace(case, services_linked=True)
    if case.discharged_at is None or case.hold_reason is not None:
        return Decision(case)
    return Decision(case, (_plan_post_visit(case, case.discharged_at, now, rules),))


def close(case: Case) -> Decision:
    """The case ended (cancelled, failed, closed, found ineligible): no visit remains."""
    return Decision(replace(case, closed=True), (CancelTasks(),))


def on_contact_failed(
    case: Case, task_kind: str, attempts: int, *, max_attempts: int, now: datetime
) -> Decision:
    """One more attempt that did not reach the person; at the limit the visit waits on
    hold as unreachable until a coordinator reopens it."""
    if not unreachable(attempts, max_attempts):
        return Decision(case)
    held, steps = _hold(case, "unreachable", task_kind, now)
    return Decision(held, steps)


def reopen(
    case: Case,
    task_kind: str,
    task_status: str,
    *,
    due_at: datetime,
    window_start: datetime | None,
    now: datetime,
) -> Decision | None:
    """Try an unreachable person again with the visit's window; None unless the visit
    is on hold as unreachable."""
    if task_status != "suspended" or case.hold_reason != "unreachable":
        return None
    case = replace(case, hold_reason=None)
    return Decision(
        case,
        (
            ResumeTask(task_kind, window_start, due_at),
            Emit(_resumed(case, task_kind, now)),
            Emit(_scheduled(case, task_kind, window_start or now, due_at, now)),
        ),
    )


def base(case: Case, now: datetime) -> dict[str, Any]:
    """The fields every case event of this case carries."""
    return {
        "case_id": case.case_id,
        "hospital_id": case.hospital_id,
        "referral_id": case.referral_id,
        "occurred_at": now,
    }


def _hold(
    case: Case, reason: HoldReason, task_kind: str, now: datetime
) -> tuple[Case, tuple[Step, ...]]:
    held = replace(case, hold_reason=reason)
    return held, (
        SuspendTasks((task_kind,)),
        Emit(CaseOnHold(**base(case, now), reason_code=reason)),
    )


def _missed_pre_visit(case: Case, now: datetime) -> tuple[Step, ...]:
    missed = VisitDone(
        **base(case, now), kind="pre-discharge", outcome="missed", precautions_acknowledged=False
    )
    return CancelTasks((PRE_DISCHARGE,)), Emit(missed)


def _plan_post_visit(
    case: Case, discharged_at: datetime, now: datetime, rules: DeadlineRules
) -> CreateTask:
    start, end = post_discharge_window(discharged_at, case.priority, rules.post_discharge_visit)
    scheduled = _scheduled(case, POST_DISCHARGE, start, end, now)
    return CreateTask(POST_DISCHARGE, start, end, if_created=scheduled)


def _resumed(case: Case, task_kind: str, now: datetime) -> CaseResumed:
    return CaseResumed(**base(case, now), kind=VISIT_KIND[task_kind])


def _scheduled(
    case: Case, task_kind: str, start: datetime, end: datetime, now: datetime
) -> VisitScheduled:
    return VisitScheduled(
        **base(case, now), kind=VISIT_KIND[task_kind], window_start=start, window_end=end
    )
