"""What each referral's hospital hears of one case event: the FHIR Task state machine
of the hospital contract (revision 2), applied in one place. Pure: the use case loads
the case and its referrals' feeds, calls `decide`, and writes the decision.

- Every update goes through `contracts.fhir_task` (the contract's table, shared with
  the tests and tools that check feeds) for the case and again for each referral's
  own feed. A move the table forbids is refused: no update is sent for it, nothing
  about the case changes, and the decision lists the refusal, which the use case
  counts and logs as an error. A sequence is only taken by an update that is sent,
  so feeds stay gap-free.
- A hold ends by going back to the status it left (`Resume`, or implied: a step the
  status it left allows, arriving while on hold, is preceded by `<left>/resumed`).
- A finished case (terminal status) changes no more: late events are ignored, a
  repeated or refused submission repeats the terminal status.
- Records refused under an existing referral repeat that referral's status with
  business status `submission-refused` and change nothing else.
- A referral joining a case (the same person referred by another hospital) hears
  `received`, then the case's chain (`Case.path`): a legal path to where the case
  stands.

New in-progress steps (services ordered, started, delivered …) are new `Update`s in
`domain.translate`; nothing here needs to know them. What closing needs is here: a
case whose services were ordered completes when referral says every line has ended
(`ServicesDelivered`) and scheduling says the post-discharge visit is done, whichever
comes last; the report is built from what was delivered (`Case.closure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from contracts.cases import CaseEvent
from contracts.fhir_task import ON_HOLD, RECEIVED, REJECTED, TERMINAL, Position, advance
from contracts.fhir_task import move_problem as table_problem
from contracts.hospital_v1 import Status
from contracts.intake import (
    CaseLinked,
    CaseReceived,
    CaseRejected,
    CaseStatusRequested,
    CaseSubmissionRefused,
    FieldError,
)
from contracts.outcome import CaseClosed, CaseLinkDeclined
from contracts.referral import (
    CarePlanSet,
    DeliveredLine,
    FeeSupportCorrected,
    ServicesDelivered,
    ServicesLinked,
    ServicesOrdered,
)
from contracts.scheduling import VisitDone
from services.lib.policy import Findings
from services.outcome import domain
from services.outcome.domain import RESUMED, SUBMISSION_REFUSED, Resume, Step, Update

FeedKey = tuple[str, str]  # (hospital_id, referral_id)


@dataclass(frozen=True)
class Feed:
    """One referral's updates feed: the last sequence sent and where it stands."""

    hospital_id: str
    referral_id: str
    sequence: int = 0
    position: Position = field(default_factory=Position)

    @property
    def key(self) -> FeedKey:
        return (self.hospital_id, self.referral_id)


@dataclass(frozen=True)
class Case:
    """What outcome keeps of a case: its chain of statuses (`path`, see `extend`), the
    referrals that follow it, its care plan, and what closing waits for (`closure`:
    `ordered` once services were ordered, then the `delivery` report and the
    `post_visit`, in either order)."""

    case_id: str
    path: tuple[Update, ...] = ()
    feeds: tuple[Feed, ...] = ()
    plan: Mapping[str, Any] | None = None
    closure: Mapping[str, Any] = field(default_factory=dict)

    @property
    def position(self) -> Position:
        return position_of(self.path)

    @property
    def current(self) -> Update | None:
        return self.path[-1] if self.path else None


@dataclass(frozen=True)
class Send:
    """An update to send: to one referral, with the next sequence of its feed."""

    hospital_id: str
    referral_id: str
    sequence: int
    update: Update
    occurred_at: datetime


@dataclass(frozen=True)
class Refusal:
    """An update the state machine would not send (an error: some producer or this
    table is wrong). `referral_id` is None when the case itself could not move."""

    case_id: str
    hospital_id: str | None
    referral_id: str | None
    from_status: Status | None
    to_status: Status
    business_status: str
    problem: str


@dataclass(frozen=True)
class Decision:
    case: Case
    sends: tuple[Send, ...] = ()
    refusals: tuple[Refusal, ...] = ()
    # Case events outcome appends to care.cases (the closure, a declined link).
    emits: tuple[CaseEvent, ...] = ()
    # Why nothing was sent although the event had something to say (for the log).
    ignored: str | None = None


def position_of(path: Sequence[Update]) -> Position:
    if not path:
        return Position()
    status = path[-1].status
    if status == ON_HOLD:
        return Position(ON_HOLD, path[-2].status if len(path) > 1 else None)
    return Position(status)


def extend(path: Sequence[Update], update: Update) -> tuple[Update, ...]:
    """The chain after a legal move: a step inside the current status replaces its
    entry; going back from a hold drops the hold; anything else is appended. So the
    chain is a legal path with each status once, on-hold last when held."""
    chain = list(path)
    at = position_of(chain)
    if chain and update.status == at.status:
        chain[-1] = update
    elif at.status == ON_HOLD and update.status == at.held_from and len(chain) > 1:
        chain.pop()
        chain[-1] = update
    else:
        chain.append(update)
    return tuple(chain)


def resumed(held_from: Status, hold: Update | None, details: Mapping[str, Any]) -> Update:
    """The step back to the status a hold left, naming the hold that ended."""
    extra = {"hold_reason": hold.reason_code} if hold is not None and hold.reason_code else {}
    return Update(held_from, RESUMED, details={**extra, **details})


def plan_moves(case: Case, step: Step) -> list[Update] | str:
    """The updates that take the case to `step` (the step itself, or first back from a
    hold), or the problem when the table allows no way; [] when there is nothing to say."""
    at = case.position
    if isinstance(step, Resume):
        if at.status != ON_HOLD or at.held_from is None:
            return []  # not on hold (any more): the hold already ended
        return [resumed(at.held_from, case.current, step.details)]
    problem = table_problem(at, step.status)
    if problem is None:
        return [step]
    if (
        at.status == ON_HOLD
        and at.held_from is not None
        and table_problem(Position(at.held_from), step.status) is None
    ):
        # The case moved on from a hold that ended without its own event: say so first.
        return [resumed(at.held_from, case.current, {}), step]
    return problem


class _Work:
    """A decision being made: the case's chain and feeds as they change."""

    def __init__(self, case: Case, occurred_at: datetime, findings: Findings | None = None) -> None:
        self.findings = findings
        self.case_id = case.case_id
        self.path = case.path
        self.plan = case.plan
        self.closure: dict[str, Any] = dict(case.closure)
        self.feeds: dict[FeedKey, Feed] = {f.key: f for f in case.feeds}
        self.occurred_at = occurred_at
        self.sends: list[Send] = []
        self.refusals: list[Refusal] = []
        self.emits: list[CaseEvent] = []
        self.ignored: str | None = None

    @property
    def case(self) -> Case:
        return Case(self.case_id, self.path, tuple(self.feeds.values()), self.plan, self.closure)

    def decision(self) -> Decision:
        return Decision(
            self.case, tuple(self.sends), tuple(self.refusals), tuple(self.emits), self.ignored
        )

    def follow(self, hospital_id: str, referral_id: str) -> Feed:
        key = (hospital_id, referral_id)
        if key not in self.feeds:
            self.feeds[key] = Feed(hospital_id, referral_id)
        return self.feeds[key]

    def send(self, key: FeedKey, update: Update) -> bool:
        """Send `update` to one referral if its feed may take it; else a refusal."""
        feed = self.feeds[key]
        problem = table_problem(feed.position, update.status)
        if problem is not None:
            self.refuse(feed.position.status, update, problem, feed)
            return False
        sequence = feed.sequence + 1
        self.feeds[key] = replace(
            feed, sequence=sequence, position=advance(feed.position, update.status)
        )
        self.sends.append(Send(*key, sequence, update, self.occurred_at))
        return True

    def refuse(
        self, from_status: Status | None, update: Update, problem: str, feed: Feed | None
    ) -> None:
        self.refusals.append(
            Refusal(
                self.case_id,
                feed.hospital_id if feed else None,
                feed.referral_id if feed else None,
                from_status,
                update.status,
                update.business_status,
                problem,
            )
        )

    def step(self, step: Step | None) -> bool:
        """Move the case by one translated event and tell every referral; True if it moved."""
        if step is None:
            return False
        at = self.case.position
        if at.status in TERMINAL:
            self.ignored = f"the case is {at.status.value}: a finished case changes no more"
            return False
        moves = plan_moves(self.case, step)
        if isinstance(moves, str):
            target = step if isinstance(step, Update) else Update(ON_HOLD, RESUMED)
            if not self.feeds:
                self.refuse(at.status, target, moves, None)
            for feed in self.feeds.values():
                self.refuse(at.status, target, moves, feed)
            return False
        for update in moves:
            self.path = extend(self.path, update)
        for key in list(self.feeds):
            for update in moves:
                if not self.send(key, update):
                    break  # this feed is out of step: nothing more for it this time
        return bool(moves)


def decide(
    case: Case, event: CaseEvent, *, now: datetime, findings: Findings | None = None
) -> Decision:
    """The updates `event` causes, per referral, and the case as it is to be stored.
    `findings`: the visit findings vocabulary (the labels a visit's codes are sent with)."""
    work = _Work(case, event.occurred_at, findings)
    match event:
        case CaseLinked():
            _linked(work, event, now)
        case CaseStatusRequested():
            _repeat(work, event)
        case CaseSubmissionRefused():
            _refused_submission(work, event, event.reason_code, event.reason, event.errors)
        case CaseRejected() if _refusal_of_a_record(work, event):
            # From an intake deployed before revision 2: a record refused under a referral
            # that goes on. Answered as the current intake would have it answered.
            _refused_submission(work, event, event.reason_code, event.reason, event.errors)
        case CaseRejected() | CaseReceived():
            # The referral follows the case from its first update on; if the case
            # could not take this one, the referral is not made a follower of it.
            key = (event.hospital_id, event.referral_id)
            new = key not in work.feeds
            work.follow(*key)
            work.step(domain.translate(event, work.findings))
            if new and work.feeds[key].position.status is None:
                del work.feeds[key]
        case CarePlanSet():
            work.plan = event.model_dump(mode="json")
            work.step(domain.translate(event, work.findings))
        case ServicesOrdered() | ServicesLinked():
            if work.step(domain.translate(event, work.findings)):
                # A plan ordered from providers closes on its delivery; one linked by an
                # earlier referral (no lines to report on) closes at the visit as before.
                work.closure["ordered"] = isinstance(event, ServicesOrdered)
        case ServicesDelivered():
            if work.step(domain.translate(event, work.findings)):
                work.closure["delivery"] = event.model_dump(mode="json")
                _close_if_ready(work, event, now)
        case VisitDone(kind="post-discharge"):
            if work.step(domain.translate(event, work.findings)):
                work.closure["post_visit"] = {
                    "precautions_acknowledged": event.precautions_acknowledged
                }
                _close_if_ready(work, event, now)
        case FeeSupportCorrected():
            _step_inside(
                work,
                "fee-support-corrected",
                {"fee_support": event.fee_support, "previous_fee_support": event.previous},
            )
        case _:
            work.step(domain.translate(event, work.findings))
    return work.decision()


def _step_inside(work: _Work, business_status: str, details: Mapping[str, Any]) -> None:
    """A fact that changes no status (a correction): a step inside the current status,
    with its reason kept, told to every referral."""
    current = work.case.current
    if current is None:
        work.ignored = "no status yet: nothing to step inside"
        return
    work.step(
        Update(
            current.status,
            business_status,
            current.reason_code,
            current.reason,
            current.reason_ko,
            dict(details),
        )
    )


def _refusal_of_a_record(work: _Work, event: CaseRejected) -> bool:
    """Whether a CaseRejected refuses one record rather than the referral: a conflicting
    duplicate always is (revision 2); any other code is when the referral can no longer
    be rejected (it has moved past `received`, or is finished)."""
    if event.reason_code == "conflicting-duplicate":
        return True
    feed = work.feeds.get((event.hospital_id, event.referral_id))
    at = feed.position if feed is not None else work.case.position
    return table_problem(at, REJECTED) is not None


def _linked(work: _Work, event: CaseLinked, now: datetime) -> None:
    """A second hospital's referral joined the case: it hears `received`, then the case's
    chain up to where it stands. If the case finished meanwhile, intake is asked to give
    the referral a case of its own."""
    if work.case.position.status in TERMINAL:
        work.emits.append(
            CaseLinkDeclined(
                case_id=event.case_id,
                hospital_id=event.hospital_id,
                referral_id=event.referral_id,
                occurred_at=now,
            )
        )
        return
    key = (event.hospital_id, event.referral_id)
    if key in work.feeds and work.feeds[key].position.status is not None:
        work.ignored = "the referral already follows this case"
        return
    work.follow(*key)
    if not work.path:
        # Intake linked the referral to an open case outcome has not heard of yet: it
        # was received, and that is all anyone can say of it so far.
        work.path = (Update(RECEIVED, "received"),)
    joined = Update(RECEIVED, "received", details={"joined_existing_case": True})
    if not work.send(key, joined):
        return
    for update in work.path:
        if (update.status, update.business_status) == (RECEIVED, "received"):
            continue  # said just now, as joining
        if not work.send(key, update):
            return


def _repeat(work: _Work, event: CaseStatusRequested) -> None:
    """The referral's hospital asked again (an identical re-submission, a follow-up for a
    finished case): the current status, as it was."""
    current = work.case.current
    feed = work.feeds.get((event.hospital_id, event.referral_id))
    if current is None or feed is None:
        # Intake still holds the referral under a case it no longer follows (a link
        # declined a moment ago): nothing outcome can repeat for it here.
        work.ignored = "the referral does not follow this case (yet): no status to repeat"
        return
    work.send(feed.key, current)


def _refused_submission(
    work: _Work,
    event: CaseEvent,
    reason_code: str,
    reason: str,
    errors: Sequence[FieldError],
) -> None:
    """A record refused under an existing referral: its status repeated, nothing changed."""
    feed = work.feeds.get((event.hospital_id, event.referral_id))
    if feed is None or feed.position.status is None:
        work.ignored = "the referral does not follow this case (yet): no status to repeat"
        return
    details: dict[str, Any] = {"errors": [e.model_dump() for e in errors]} if errors else {}
    en, ko = domain.reason_texts(reason_code, reason)
    update = Update(feed.position.status, SUBMISSION_REFUSED, reason_code, en, ko, details)
    work.send(feed.key, update)


def _close_if_ready(work: _Work, event: CaseEvent, now: datetime) -> None:
    """Close the loop once both halves are in: every line ended (the delivery report)
    and the post-discharge visit done. A plan linked before lines were ordered (an
    earlier referral) has no delivery to wait for: its plan stands in for it."""
    visit = work.closure.get("post_visit")
    if visit is None:
        return
    delivery = work.closure.get("delivery")
    if delivery is None and work.closure.get("ordered", False):
        return  # ordered from providers: the delivery report is still to come
    report = delivery if delivery is not None else (work.plan or {})
    closed = CaseClosed(
        case_id=event.case_id,
        hospital_id=event.hospital_id,
        referral_id=event.referral_id,
        occurred_at=now,
        delivered=[DeliveredLine.model_validate(line) for line in report.get("lines", [])],
        total_krw=report.get("total_krw", 0),
        publicly_paid_krw=report.get("publicly_paid_krw", 0),
        self_paid_krw=report.get("self_paid_krw", 0),
        annual_cap_krw=report.get("annual_cap_krw", 0),
        cap_remaining_krw=report.get("cap_remaining_krw", 0),
        precautions_acknowledged=bool(visit.get("precautions_acknowledged")),
    )
    work.emits.append(closed)
    work.occurred_at = closed.occurred_at
    work.step(domain.translate(closed))


def feed_of(row: Mapping[str, Any]) -> Feed:
    """A referral's feed from its stored row."""
    status, held = row.get("status"), row.get("held_from")
    return Feed(
        row["hospital_id"],
        row["referral_id"],
        int(row.get("sequence") or 0),
        Position(Status(status) if status else None, Status(held) if held else None),
    )
