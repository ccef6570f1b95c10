"""Referral's use cases.

Reacting to case events (subscriber side): open the review task for every
accepted case, the care-plan task after the pre-discharge visit, close on
cancellation. Acceptances are taken as a set (issue 12): a batch's run of them
adds its cases with one statement and their reviews with one `tasks.create_many`;
the other events go one by one in their place, so each case's events keep their
order. Coordinators' work (interface side, `Coordinator`): complete a
review, set a care plan (each line ordered from a provider and the delivery task
opened), put a plan on the waitlist or report it could not be delivered, record a
line's delivery on the delivery task. Providers (`ProviderDesk`) report the
delivery of their own lines. Each runs in one transaction with the events it emits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal, get_args

import asyncpg

from contracts.intake import (
    CaseAccepted,
    CaseCancelled,
    CaseReadmitted,
    DischargeDateChanged,
    PersonalDataDestroyed,
)
from contracts.outcome import CaseClosed
from contracts.referral import (
    CarePlanSet,
    CaseFailed,
    CaseWaitlisted,
    FeeSupportCorrected,
    ProviderName,
    ProviderRef,
    ReviewCompleted,
    ReviewRefusal,
    ServicesDelivered,
    ServicesOrdered,
    ServicesStarted,
)
from contracts.scheduling import VisitDone
from services.lib.policy import PolicyBook, PolicyIncomplete, Providers, Registry, seoul_date
from services.lib.policy.deadlines import DeadlineRules
from services.lib.runtime.events import CaseEventRouter, emit
from services.lib.runtime.logging import get_logger
from services.lib.runtime.pipeline import Handler, Record, Scope
from services.lib.tasks import operations as tasks
from services.lib.tasks.privacy import forget_task_notes
from services.referral import domain, store
from services.referral.domain import Line, LineChoice

log = get_logger(__name__)
SERVICE = "referral"
REVIEW = "review"
CARE_PLAN = "care-plan"
DELIVERY = "delivery"
WAITLIST_RETRY = timedelta(days=7)


class PlanRejected(tasks.TaskError):
    """The plan cannot be set as asked (unknown service, a stay over 14 days, a provider
    not contracted for the line …)."""

    code = "invalid-plan"


class PolicyMissing(tasks.TaskError):
    """The case's policy year lacks a value the plan needs (e.g. 2024 unit prices):
    reported, never guessed; an operator completes the policy file."""

    code = "policy-incomplete"


class InvalidDecision(tasks.TaskError):
    code = "invalid-request"


class InvalidReport(tasks.TaskError):
    """A delivery report that cannot be true (a date in the future, more units than
    ordered …); the message starts with the field."""

    code = "invalid-request"


class LineState(tasks.TaskError):
    """The line (or its case) is not where the report needs it: already started, ended,
    cancelled, not started yet, or the case is closed."""

    code = "invalid-state"


class NoSuchLine(tasks.TaskNotFound):
    """No such line, or another provider's: it does not exist for the caller."""


@dataclass(frozen=True)
class LineReport:
    """One step of one line, as a coordinator or its provider reports it: a start
    (`started_on`), an end (`ended_on` with `delivered_units`, and `end_reason` when short
    of what was ordered), or both at once."""

    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int | None = None
    end_reason: str | None = None


@dataclass(frozen=True)
class Reported:
    """What a report did: the line as it is now, the case's lines, and whether that
    ended the delivery (`delivered`, or `could-not-deliver` when nothing was)."""

    line: Line
    lines: tuple[Line, ...]
    finished: Literal["delivered", "could-not-deliver"] | None = None
    # The providers' names by id, for people reading the result.
    names: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.finished is not None:
            return self.finished
        return "line-ended" if self.line.status == "ended" else "line-started"

    def summary(self) -> dict[str, Any]:
        return {
            "lines": [
                {**line_view(line), "provider_name": self.names.get(line.provider_id)}
                for line in self.lines
            ],
            "open_lines": sum(1 for line in self.lines if line.open),
        }


def line_view(line: Line) -> dict[str, Any]:
    """A line as the APIs show it (no personal data: ids, codes, dates, amounts)."""
    return {
        "id": line.id,
        "case_id": line.case_id,
        "line": line.line_no,
        "service": line.service,
        "quantity": line.quantity,
        "unit": line.unit,
        "provider_id": line.provider_id,
        "planned_start": line.planned_start.isoformat(),
        "ordered_on": line.ordered_on.isoformat(),
        "status": line.status,
        "outcome": line.outcome,
        "started_on": line.started_on.isoformat() if line.started_on else None,
        "ended_on": line.ended_on.isoformat() if line.ended_on else None,
        "delivered_units": line.delivered_units,
        "end_reason": line.end_reason,
        "cost_krw": line.cost_krw,
        "district_paid_krw": line.district_paid_krw,
        "self_paid_krw": line.self_paid_krw,
    }


class CaseEvents:
    """The subscriber side: tasks appear as the case moves. `policies`: the yearly
    policies, whose deadline rules date the care-plan task (without: the programme's
    rules, services.lib.policy.deadlines)."""

    def __init__(self, policies: PolicyBook | None = None) -> None:
        self._policies = policies

    def _deadlines(self, policy_year: int) -> DeadlineRules:
        if self._policies is None or policy_year not in self._policies.years:
            return DeadlineRules()
        return self._policies.for_year(policy_year).deadlines

    def handler(self) -> Handler:
        return CaseEventRouter(
            {
                DischargeDateChanged: self._discharge_date,
                CaseReadmitted: self._discharge_date,
                VisitDone: self._visit_done,
                CaseCancelled: self._closed,
                CaseClosed: self._closed,
                PersonalDataDestroyed: self._personal_data_destroyed,
            },
            # Accepted cases come in long runs (every new referral): taken as a set.
            {CaseAccepted: self._accepted},
        )

    async def _accepted(
        self,
        conn: asyncpg.Connection,
        accepted: list[tuple[Record, CaseAccepted]],
        scope: Scope,
    ) -> None:
        """Accepted cases, a run of them at once (one alone is a run of one): the cases
        added with one statement, a review task for each case that is new (one
        `tasks.create_many`). A case accepted twice: the first acceptance counts, and a
        case referral already has gets no second review, as one at a time."""
        cases = []
        for record, ev in accepted:
            with scope(record):  # the record's span, in its own trace
                cases.append(
                    store.Case(
                        case_id=ev.case_id,
                        hospital_id=ev.hospital_id,
                        referral_id=ev.referral_id,
                        person_id=ev.person_id,
                        centre_id=ev.centre_id,
                        policy_year=ev.policy_year,
                        fee_support=ev.fee_support,
                        priority=ev.priority,
                        requested_services=tuple(str(s) for s in ev.requested_services),
                        closed=False,
                        district=ev.district,
                        expected_discharge_date=ev.expected_discharge_date,
                    )
                )
        added = await store.add_cases(conn, cases)
        # A case accepted twice in the run asks twice: create_many, like two creates,
        # makes the first and finds it live for the second.
        await tasks.create_many(
            conn,
            [
                tasks.NewTask(
                    case_id=ev.case_id,
                    kind=REVIEW,
                    centre_id=ev.centre_id,
                    priority=ev.priority,
                    due_at=ev.review_deadline,
                    hospital_id=ev.hospital_id,
                    expected_discharge_date=ev.expected_discharge_date,
                )
                for _, ev in accepted
                if ev.case_id in added
            ],
        )

    async def _discharge_date(
        self,
        conn: asyncpg.Connection,
        record: Record,
        ev: DischargeDateChanged | CaseReadmitted,
    ) -> None:
        """Services start from the expected discharge by default: follow it."""
        if await store.lock_case(conn, ev.case_id) is not None:
            await store.set_expected_discharge(conn, ev.case_id, ev.expected_discharge_date)
            await tasks.set_expected_discharge(conn, ev.case_id, ev.expected_discharge_date)

    async def _visit_done(self, conn: asyncpg.Connection, record: Record, ev: VisitDone) -> None:
        if ev.kind != "pre-discharge":
            return
        case = await store.lock_case(conn, ev.case_id)
        if case is None or case.closed:
            return
        await tasks.create(
            conn,
            case_id=ev.case_id,
            kind=CARE_PLAN,
            centre_id=case.centre_id,
            priority=case.priority,
            due_at=self._deadlines(case.policy_year).care_plan.due(ev.occurred_at, case.priority),
            hospital_id=case.hospital_id,
            expected_discharge_date=case.expected_discharge_date,
        )

    async def _closed(
        self, conn: asyncpg.Connection, record: Record, ev: CaseCancelled | CaseClosed
    ) -> None:
        if await store.lock_case(conn, ev.case_id) is not None:
            await store.close_case(conn, ev.case_id)
            await tasks.cancel_live(conn, ev.case_id)
            await store.cancel_open_lines(conn, ev.case_id)

    async def _personal_data_destroyed(
        self, conn: asyncpg.Connection, record: Record, ev: PersonalDataDestroyed
    ) -> None:
        """Intake destroyed the case's personal data (PIPA): the notes people typed
        about it (fee-support corrections, task exits) go too; the coded facts stay."""
        corrections = await store.forget_fee_correction_notes(conn, ev.case_id)
        audit = await forget_task_notes(conn, ev.case_id)
        log.info(
            "free text of a case deleted",
            case_id=ev.case_id,
            correction_notes=corrections,
            audit_notes=audit,
        )


class Delivery:
    """Recording one step of one line, for coordinators and providers alike: the line's
    state rules and price are `domain`'s; this writes the line and the events.

    The caller has locked the case and its lines (case first: the one lock order)."""

    def __init__(self, policies: PolicyBook, providers: Providers) -> None:
        self._policies = policies
        self._providers = providers

    def provider(self, provider_id: str) -> ProviderRef:
        found = self._providers.get(provider_id)
        if found is None:  # taken out of the file since the order: its id still names it
            return ProviderRef(id=provider_id, name=ProviderName(ko=provider_id, en=provider_id))
        return domain.provider_ref(found)

    async def report(
        self,
        conn: asyncpg.Connection,
        case: store.Case,
        lines: Sequence[Line],
        line_no: int,
        report: LineReport,
        actor: str,
        now: datetime,
    ) -> Reported:
        line = next((candidate for candidate in lines if candidate.line_no == line_no), None)
        if line is None:
            raise InvalidReport(f"line: the plan has no line {line_no}")
        if case.closed:
            raise LineState(f"case {case.case_id} is closed: its delivery can no longer change")
        if report.started_on is None and report.ended_on is None:
            raise InvalidReport("started_on: report a start, an end, or both")
        today = seoul_date(now)
        after = line
        try:
            if report.started_on is not None:
                after = domain.start(after, report.started_on, today=today)
            if report.ended_on is not None:
                after = await self._end(conn, case, after, report, today)
        except domain.DeliveryInvalid as exc:
            raise InvalidReport(str(exc)) from exc
        except domain.DeliveryConflict as exc:
            raise LineState(str(exc)) from exc
        await store.save_line(conn, after, actor)
        now_lines = tuple(after if other.line_no == line_no else other for other in lines)
        names = {x.provider_id: self.provider(x.provider_id).name.model_dump() for x in lines}
        base = _base(case, now)
        if report.started_on is not None and domain.first_to_start(lines, after):
            await emit(
                conn,
                ServicesStarted(
                    **base,
                    line=after.line_no,
                    service=after.service,  # type: ignore[arg-type]
                    provider=self.provider(after.provider_id),
                    started_on=report.started_on,
                ),
                service=SERVICE,
            )
        if not domain.all_ended(now_lines):
            return Reported(after, now_lines, names=names)
        delivered = [domain.delivered_line(x, self.provider(x.provider_id)) for x in now_lines]
        if domain.nothing_delivered(now_lines):
            await emit(
                conn,
                CaseFailed(**base, reason_code="could-not-deliver", delivered=delivered),
                service=SERVICE,
            )
            return Reported(after, now_lines, "could-not-deliver", names)
        policy = self._policies.for_year(case.policy_year)
        used = await store.used_this_year(conn, case.person_id, case.policy_year)
        district = sum(x.district_paid_krw for x in delivered)
        resident = sum(x.self_paid_krw for x in delivered)
        await emit(
            conn,
            ServicesDelivered(
                **base,
                lines=delivered,
                total_krw=district + resident,
                publicly_paid_krw=district,
                self_paid_krw=resident,
                annual_cap_krw=policy.annual_cap_krw,
                cap_remaining_krw=max(0, policy.annual_cap_krw - used),
            ),
            service=SERVICE,
        )
        return Reported(after, now_lines, "delivered", names)

    async def _end(
        self,
        conn: asyncpg.Connection,
        case: store.Case,
        line: Line,
        report: LineReport,
        today: date,
    ) -> Line:
        if report.ended_on is None or report.delivered_units is None:
            raise domain.DeliveryInvalid("delivered_units", "an end needs the units delivered")
        domain.check_end(
            line,
            delivered_units=report.delivered_units,
            ended_on=report.ended_on,
            end_reason=report.end_reason,
            today=today,
        )
        policy = self._policies.for_year(case.policy_year)
        try:
            cost = domain.delivered_cost(policy, line.service, report.delivered_units)
        except PolicyIncomplete as exc:
            raise PolicyMissing(str(exc)) from exc
        # The cap's room for this line: what the person's other lines (all cases, this
        # year) hold of it, delivered amounts for the ended ones.
        used = await store.used_this_year(
            conn, case.person_id, case.policy_year, except_line=(case.case_id, line.line_no)
        )
        price = domain.split(
            cost,
            fee_support=case.fee_support,
            self_pay_share=Fraction(policy.fee.self_pay_share),
            cap_room_krw=policy.annual_cap_krw - used,
        )
        return domain.end(
            line,
            delivered_units=report.delivered_units,
            ended_on=report.ended_on,
            end_reason=report.end_reason,
            today=today,
            price=price,
        )


class FeeCorrectionRefused(tasks.TaskError):
    """A fee-support correction refused: `code` says why (case-closed, care-plan-set,
    invalid-request), the message in words."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def correct_fee_support(
    pool: asyncpg.Pool,
    case_id: str,
    *,
    actor: str,
    centre_id: str,
    fee_support: str,
    note: str,
    now: datetime | None = None,
) -> FeeSupportCorrected:
    """A coordinator corrects the case's fee support before the care plan, with a note:
    audited in `fee_corrections`, the plan is then priced on it, and the hospital hears
    of it (`FeeSupportCorrected`). Another centre's case does not exist for them."""
    now = now or datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        case = await store.lock_case(conn, case_id)
        if case is None or case.centre_id != centre_id:
            raise tasks.TaskNotFound("no such case")
        problem = domain.fee_correction_problem(
            closed=case.closed,
            planned=await store.has_plan(conn, case_id),
            current=case.fee_support,
            corrected=fee_support,
        )
        if problem is not None:
            raise FeeCorrectionRefused(*problem)
        await store.correct_fee_support(
            conn,
            case_id,
            previous=case.fee_support,
            fee_support=fee_support,
            note=note,
            actor=actor,
        )
        event = FeeSupportCorrected(
            **_base(case, now),
            fee_support=fee_support,  # type: ignore[arg-type]
            previous=case.fee_support,  # type: ignore[arg-type]
        )
        await emit(conn, event, service=SERVICE)
    log.info("fee support corrected", case_id=case_id, fee_support=fee_support)
    return event


class Coordinator:
    """What a coordinator does with referral's tasks; the interfaces call these.

    Each action locks the task's case before the task (`_lock_case_of`), the order
    the case-event consumers use too, so the two never deadlock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        policies: PolicyBook,
        providers: Providers,
        registry: Registry,
    ) -> None:
        self._pool = pool
        self._policies = policies
        self._providers = providers
        self._registry = registry
        self._delivery = Delivery(policies, providers)

    async def complete_review(
        self,
        task_id: int,
        actor: str,
        *,
        decision: Literal["eligible", "ineligible"],
        reason_code: str | None = None,
        now: datetime | None = None,
    ) -> tasks.Task:
        if decision == "ineligible" and reason_code not in get_args(ReviewRefusal):
            raise InvalidDecision(
                f"an ineligible decision needs one of the reason codes {', '.join(get_args(ReviewRefusal))}"
            )
        if decision == "eligible":
            reason_code = None
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.complete(
                conn, task_id, actor, {"decision": decision, "reason_code": reason_code}, now=now
            )
            case = _case_of(task, locked, REVIEW)
            await emit(
                conn,
                ReviewCompleted(
                    **_base(case, now),
                    decision=decision,
                    reason_code=reason_code,  # type: ignore[arg-type]
                ),
                service=SERVICE,
            )
            if decision == "ineligible":
                await store.close_case(conn, case.case_id)
                await tasks.cancel_live(conn, case.case_id)
            return task

    async def set_care_plan(
        self,
        task_id: int,
        actor: str,
        *,
        lines: Sequence[tuple[str, int]] | None = None,
        choices: Sequence[LineChoice] = (),
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Price the plan, fit it under the person's remaining annual cap, order each
        line from a provider (`choices[i]` for the i-th line: a provider and a planned
        start; none = the suggested provider, from the expected discharge), and open
        the delivery task.

        Nothing fits → the case fails with `cap-exhausted`; part fits → a partial plan.
        `lines` default to a first week of each requested service.
        """
        now = now or datetime.now(UTC)
        today = seoul_date(now)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.held(conn, task_id, actor, now=now)
            case = _case_of(task, locked, CARE_PLAN)
            requested = list(lines) if lines else domain.default_request(case.requested_services)
            policy = self._policies.for_year(case.policy_year)
            used = await store.used_this_year(conn, case.person_id, case.policy_year)
            try:
                chosen = domain.choose(
                    [service for service, _ in requested],
                    choices if lines else (),
                    providers=self._providers,
                    district=self._district(case),
                    today=today,
                    expected_discharge=case.expected_discharge_date,
                )
                fit = domain.plan(
                    policy,
                    requested=requested,
                    fee_support=case.fee_support,
                    already_used_krw=used,
                )
            except PolicyIncomplete as exc:
                raise PolicyMissing(str(exc)) from exc
            except ValueError as exc:  # RuleError, PlanProblem: a stay over 14 days …
                raise PlanRejected(str(exc)) from exc
            base = _base(case, now)
            if fit.nothing_fits:
                await tasks.complete(conn, task_id, actor, {"decision": "cap-exhausted"}, now=now)
                await emit(
                    conn,
                    CaseFailed(
                        **base,
                        reason_code="cap-exhausted",
                        annual_cap_krw=fit.annual_cap_krw,
                        cap_remaining_krw=fit.cap_remaining_before_krw,
                    ),
                    service=SERVICE,
                )
                await self._close(conn, case.case_id)
                return {"outcome": "cap-exhausted"}
            plan_lines = domain.plan_lines(fit)
            ordered = domain.order(fit, chosen)
            await tasks.complete(
                conn,
                task_id,
                actor,
                {"decision": "plan", "lines": [line.model_dump(mode="json") for line in ordered]},
                now=now,
            )
            await store.add_plan(
                conn,
                case_id=case.case_id,
                person_id=case.person_id,
                policy_year=case.policy_year,
                lines=[line.model_dump() for line in plan_lines],
                total_krw=fit.total_krw,
                publicly_paid_krw=fit.district_total_krw,
                self_paid_krw=fit.resident_total_krw,
            )
            await store.add_lines(
                conn,
                [
                    Line(
                        id=0,
                        case_id=case.case_id,
                        line_no=line.line,
                        service=str(line.service),
                        quantity=line.quantity,
                        unit=line.unit,
                        provider_id=line.provider.id,
                        planned_start=line.planned_start,
                        ordered_on=today,
                        planned_district_krw=fitted.district_pays_krw,
                    )
                    for line, fitted in zip(ordered, fit.lines, strict=True)
                ],
                person_id=case.person_id,
                policy_year=case.policy_year,
            )
            await tasks.create(
                conn,
                case_id=case.case_id,
                kind=DELIVERY,
                centre_id=case.centre_id,
                priority=case.priority,
                due_at=domain.delivery_due(ordered, policy.deadlines.delivery, case.priority),
                hospital_id=case.hospital_id,
                expected_discharge_date=case.expected_discharge_date,
            )
            await emit(
                conn,
                CarePlanSet(
                    **base,
                    lines=plan_lines,
                    total_krw=fit.total_krw,
                    publicly_paid_krw=fit.district_total_krw,
                    self_paid_krw=fit.resident_total_krw,
                    partial=fit.partial,
                    paid_by=fit.paid_by,
                    annual_cap_krw=fit.annual_cap_krw,
                    cap_remaining_krw=fit.cap_remaining_after_krw,
                ),
                service=SERVICE,
            )
            # Ordered with the plan, in the same transaction: the hospital hears who
            # delivers each service and from when.
            await emit(conn, ServicesOrdered(**base, lines=ordered), service=SERVICE)
            return {
                "outcome": "plan",
                "partial": fit.partial,
                "total_krw": fit.total_krw,
                "lines": [line.model_dump(mode="json") for line in ordered],
            }

    def _district(self, case: store.Case) -> str:
        if case.district:
            return case.district
        # A case accepted before referral kept its district: its centre's district.
        centre = next((c for c in self._registry.centres if c.id == case.centre_id), None)
        return centre.district if centre is not None else ""

    async def record_delivery(
        self,
        task_id: int,
        actor: str,
        line_no: int,
        report: LineReport,
        *,
        now: datetime | None = None,
    ) -> Reported:
        """One step of one line, on the case's delivery task (held by the coordinator);
        the task completes when the last line ends."""
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.held(conn, task_id, actor, now=now)
            case = _case_of(task, locked, DELIVERY)
            lines = await store.lock_lines(conn, case.case_id)
            done = await self._delivery.report(conn, case, lines, line_no, report, actor, now)
            if done.finished is None:
                await tasks.record_progress(conn, task_id, actor, done.summary(), now=now)
                return done
            await tasks.complete(
                conn, task_id, actor, {**done.summary(), "outcome": done.finished}, now=now
            )
            if done.finished == "could-not-deliver":
                await self._close(conn, case.case_id)
            return done

    async def waitlist(
        self, task_id: int, actor: str, *, now: datetime | None = None
    ) -> tasks.Task:
        """No provider can take the plan now: on hold, the task returns to the queue later."""
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.held(conn, task_id, actor, now=now)
            case = _case_of(task, locked, CARE_PLAN)
            task = await tasks.release(conn, task_id, actor, now=now)
            await tasks.replan(conn, case.case_id, CARE_PLAN, due_at=now + WAITLIST_RETRY)
            await emit(
                conn,
                CaseWaitlisted(**_base(case, now), retry_at=now + WAITLIST_RETRY),
                service=SERVICE,
            )
            return task

    async def could_not_deliver(
        self, task_id: int, actor: str, *, now: datetime | None = None
    ) -> tasks.Task:
        now = now or datetime.now(UTC)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await _lock_case_of(conn, task_id)
            task = await tasks.complete(
                conn, task_id, actor, {"decision": "could-not-deliver"}, now=now
            )
            case = _case_of(task, locked, CARE_PLAN)
            await emit(
                conn,
                CaseFailed(**_base(case, now), reason_code="could-not-deliver"),
                service=SERVICE,
            )
            await self._close(conn, case.case_id)
            return task

    async def _close(self, conn: asyncpg.Connection, case_id: str) -> None:
        await store.close_case(conn, case_id)
        await tasks.cancel_live(conn, case_id)
        await store.cancel_open_lines(conn, case_id)


class ProviderDesk:
    """What a provider does through its own credential: see and report its own lines.
    Another provider's line does not exist for it (`NoSuchLine`)."""

    def __init__(self, pool: asyncpg.Pool, policies: PolicyBook, providers: Providers) -> None:
        self._pool = pool
        self._delivery = Delivery(policies, providers)

    async def line(self, provider_id: str, line_id: int) -> Line:
        async with self._pool.acquire() as conn:
            found = await store.line_by_id(conn, line_id)
        if found is None or found.provider_id != provider_id:
            raise NoSuchLine(f"no line {line_id}")
        return found

    async def lines(self, provider_id: str, *, statuses: Sequence[str], limit: int) -> list[Line]:
        async with self._pool.acquire() as conn:
            return await store.provider_lines(conn, provider_id, statuses=statuses, limit=limit)

    async def report(
        self, provider_id: str, line_id: int, report: LineReport, *, now: datetime | None = None
    ) -> Reported:
        """One step of the provider's line; the case's delivery task completes (whoever
        holds it) when this ends the last line."""
        now = now or datetime.now(UTC)
        actor = f"provider:{provider_id}"
        async with self._pool.acquire() as conn, conn.transaction():
            found = await store.line_by_id(conn, line_id)
            if found is None or found.provider_id != provider_id:
                raise NoSuchLine(f"no line {line_id}")
            case = await store.lock_case(conn, found.case_id)
            if case is None:
                raise NoSuchLine(f"no line {line_id}")
            lines = await store.lock_lines(conn, case.case_id)
            done = await self._delivery.report(conn, case, lines, found.line_no, report, actor, now)
            if done.finished is not None:
                await tasks.finish_live(
                    conn,
                    case.case_id,
                    DELIVERY,
                    actor,
                    {**done.summary(), "outcome": done.finished},
                    now=now,
                )
                if done.finished == "could-not-deliver":
                    await store.close_case(conn, case.case_id)
                    await tasks.cancel_live(conn, case.case_id)
            return done


async def _lock_case_of(conn: asyncpg.Connection, task_id: int) -> store.Case | None:
    """Lock the task's case, then the task: the one lock order (see
    services.lib.tasks.operations). The task operation that follows re-checks the
    task's state under the lock."""
    case = await store.lock_case(conn, await tasks.case_id_of(conn, task_id))
    await tasks.lock(conn, task_id)
    return case


def _case_of(task: tasks.Task, case: store.Case | None, kind: str) -> store.Case:
    if task.kind != kind:
        raise tasks.TaskError(f"task {task.id} is a {task.kind} task, not {kind}")
    if case is None:
        raise tasks.TaskNotFound(f"no case for task {task.id}")
    return case


def _base(case: store.Case, now: datetime) -> dict[str, Any]:
    return {
        "case_id": case.case_id,
        "hospital_id": case.hospital_id,
        "referral_id": case.referral_id,
        "occurred_at": now,
    }
