"""Pure rules of the referral service: the care plan (priced by the policy year,
fitted under the annual cap), ordering each line from a contracted provider, and
delivery (ordered → started → ended, the cost of what was delivered split into the
district-paid and self-paid parts). No I/O: the use cases load, call these, write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Literal

from contracts.referral import (
    LINE_END_REASONS,
    DeliveredLine,
    LineOutcome,
    OrderedLine,
    PlanLine,
    ProviderName,
    ProviderRef,
)
from services.lib.policy import (
    SEOUL_TZ,
    CapFit,
    Policy,
    Provider,
    Providers,
    fit_to_cap,
    price_plan,
)
from services.lib.policy.deadlines import DeadlineRule

# What the walking skeleton plans when nobody chooses quantities: a modest first
# week of each requested service, in the service's own unit.
DEFAULT_QUANTITY = {
    "temporary_home_care": 8,  # 30-minute units: 4 hours
    "short_term_facility": 3,  # days
    "accompaniment": 2,  # hours
    "home_repair": 2,  # hours
    "residential_convenience": 2,  # hours
    "meal_delivery": 10,  # meals
}


def default_request(services: Sequence[str]) -> list[tuple[str, int]]:
    return [(code, DEFAULT_QUANTITY[code]) for code in services]


def plan(
    policy: Policy,
    *,
    requested: Sequence[tuple[str, int]],
    fee_support: str,
    already_used_krw: int,
) -> CapFit:
    return fit_to_cap(
        policy,
        requested_lines=requested,
        already_used_this_year=already_used_krw,
        fee_support=fee_support,  # type: ignore[arg-type]
    )


def plan_lines(fit: CapFit) -> list[PlanLine]:
    return [
        PlanLine(
            service=line.service_code,  # type: ignore[arg-type]
            quantity=line.quantity,
            unit=str(line.unit),
            cost_krw=line.cost_krw,
        )
        for line in fit.lines
    ]


# ---------------------------------------------------------------------------------------
# Ordering: a provider and a planned start per line
# ---------------------------------------------------------------------------------------

# How long a line takes from its planned start, in days per unit, to set the delivery
# task's deadline: a facility day or a meal is a day; home care is taken as two hours a
# day (four half-hours), the hourly services as two hours a day.
_UNITS_PER_DAY = {"per_day": 1, "per_meal": 1, "per_30_min": 4, "per_hour": 2}
# How far ahead a line may be planned to start.
MAX_START_AHEAD = timedelta(days=180)


class PlanProblem(ValueError):
    """A line of the plan cannot be ordered as asked; `field` names it (`lines.0.provider_id`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class LineChoice:
    """What the coordinator chose for a requested line beyond service and quantity
    (None: the suggested provider, the default start)."""

    provider_id: str | None = None
    planned_start: date | None = None


def default_start(today: date, expected_discharge: date | None) -> date:
    """Services start when the patient is home: the expected discharge date, or today
    when that has passed (or is unknown)."""
    if expected_discharge is None or expected_discharge < today:
        return today
    return expected_discharge


def choose_provider(
    providers: Providers, district: str, service: str, wanted: str | None, field: str
) -> Provider:
    """The provider for a line: the one chosen, if contracted there for the service,
    else the suggested one."""
    if wanted is None:
        found = providers.suggested(district, service)
        if found is None:
            raise PlanProblem(field, f"no provider is contracted for {service} in {district}")
        return found
    chosen = providers.get(wanted)
    if chosen is None:
        raise PlanProblem(field, f"{wanted!r} is not a contracted provider")
    if not chosen.delivers(district, service):
        raise PlanProblem(field, f"{wanted} is not contracted for {service} in {district}")
    return chosen


def check_start(planned_start: date, today: date, field: str) -> date:
    if planned_start < today:
        raise PlanProblem(field, f"{planned_start.isoformat()} is in the past")
    if planned_start > today + MAX_START_AHEAD:
        raise PlanProblem(field, f"more than {MAX_START_AHEAD.days} days ahead")
    return planned_start


def choose(
    services: Sequence[str],
    choices: Sequence[LineChoice],
    *,
    providers: Providers,
    district: str,
    today: date,
    expected_discharge: date | None,
) -> list[tuple[Provider, date]]:
    """The provider and planned start of each requested line (`choices[i]` is the i-th
    line's; missing choices take the suggestion and the default start). Every line is
    checked, one the cap will cut too: a wrong choice is wrong either way."""
    chosen = []
    for index, service in enumerate(services):
        choice = choices[index] if index < len(choices) else LineChoice()
        provider = choose_provider(
            providers, district, service, choice.provider_id, f"lines.{index}.provider_id"
        )
        start = (
            check_start(choice.planned_start, today, f"lines.{index}.planned_start")
            if choice.planned_start is not None
            else default_start(today, expected_discharge)
        )
        chosen.append((provider, start))
    return chosen


def order(fit: CapFit, chosen: Sequence[tuple[Provider, date]]) -> list[OrderedLine]:
    """The lines that fit, as ordered: the fitted lines are the requested ones in order
    (the last possibly reduced, later ones cut), so they share `chosen`'s indices."""
    return [
        OrderedLine(
            line=index + 1,
            service=line.service_code,  # type: ignore[arg-type]
            quantity=line.quantity,
            unit=str(line.unit),
            cost_krw=line.cost_krw,
            provider=provider_ref(chosen[index][0]),
            planned_start=chosen[index][1],
        )
        for index, line in enumerate(fit.lines)
    ]


def provider_ref(provider: Provider) -> ProviderRef:
    return ProviderRef(id=provider.id, name=ProviderName(ko=provider.name.ko, en=provider.name.en))


def planned_days(unit: str, quantity: int) -> int:
    """Days a line takes from its planned start (at least one)."""
    per_day = _UNITS_PER_DAY.get(unit, 1)
    return max(1, -(-quantity // per_day))


def delivery_period_end(lines: Sequence[OrderedLine]) -> datetime:
    """The end of the last line's planned period: midnight after its last day, Seoul time."""
    last = max(
        line.planned_start + timedelta(days=planned_days(line.unit, line.quantity))
        for line in lines
    )
    return datetime.combine(last, time.min, tzinfo=SEOUL_TZ)


def delivery_due(lines: Sequence[OrderedLine], rule: DeadlineRule, priority: str) -> datetime:
    """The delivery task's deadline: the policy's rule (`deadlines.delivery`, a grace for
    the providers' reports) from the end of the last line's planned period."""
    return rule.due(delivery_period_end(lines), priority)


# ---------------------------------------------------------------------------------------
# Delivery: ordered → started → ended (delivered, partly delivered or not delivered)
# ---------------------------------------------------------------------------------------

LineStatus = Literal["ordered", "started", "ended", "cancelled"]
OPEN: tuple[LineStatus, ...] = ("ordered", "started")


@dataclass(frozen=True)
class Line:
    """One line of a case's plan as referral keeps it (a row of `plan_lines`)."""

    id: int
    case_id: str
    line_no: int
    service: str
    quantity: int
    unit: str
    provider_id: str
    planned_start: date
    ordered_on: date
    # The district's part of the planned cost: what the line holds of the annual cap
    # until it ends (then what the district paid for what was delivered counts).
    planned_district_krw: int
    status: LineStatus = "ordered"
    started_on: date | None = None
    ended_on: date | None = None
    delivered_units: int | None = None
    end_reason: str | None = None
    cost_krw: int | None = None
    district_paid_krw: int | None = None
    self_paid_krw: int | None = None

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def outcome(self) -> LineOutcome | None:
        if self.status != "ended" or self.delivered_units is None:
            return None
        if self.delivered_units >= self.quantity:
            return "delivered"
        return "partly-delivered" if self.delivered_units > 0 else "not-delivered"

    @property
    def cap_use_krw(self) -> int:
        """What this line counts against the person's annual cap: the district's part
        of what was delivered once it ended, its planned part while it is open."""
        if self.status == "ended":
            return self.district_paid_krw or 0
        return self.planned_district_krw if self.open else 0


class DeliveryConflict(Exception):
    """The line is not in a state that allows this (already started, ended …)."""

    code = "line-state"


class DeliveryInvalid(ValueError):
    """What was reported is not possible; `field` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def start(line: Line, started_on: date, *, today: date) -> Line:
    """ordered → started, on a day from the ordering to today."""
    if line.status != "ordered":
        raise DeliveryConflict(
            f"line {line.line_no} is {line.status}, not ordered: it cannot start"
        )
    if started_on > today:
        raise DeliveryInvalid("started_on", f"{started_on.isoformat()} is in the future")
    if started_on < line.ordered_on:
        raise DeliveryInvalid(
            "started_on", f"{started_on.isoformat()} is before the line was ordered"
        )
    return replace(line, status="started", started_on=started_on)


def check_end(
    line: Line,
    *,
    delivered_units: int,
    ended_on: date,
    end_reason: str | None,
    today: date,
) -> None:
    """Whether the line may end so: everything ordered delivered (no reason), or less
    with a reason; anything delivered means the line had started."""
    if not line.open:
        raise DeliveryConflict(f"line {line.line_no} is {line.status}: it cannot end again")
    if delivered_units < 0:
        raise DeliveryInvalid("delivered_units", "must not be negative")
    if delivered_units > line.quantity:
        raise DeliveryInvalid(
            "delivered_units", f"{delivered_units} is more than the {line.quantity} ordered"
        )
    if delivered_units > 0 and line.status != "started":
        raise DeliveryConflict(
            f"line {line.line_no} has not started: record its start before units delivered"
        )
    if delivered_units < line.quantity and end_reason is None:
        raise DeliveryInvalid(
            "end_reason",
            f"{delivered_units} of {line.quantity} delivered: say why the line ended early",
        )
    if delivered_units == line.quantity and end_reason is not None:
        raise DeliveryInvalid("end_reason", "a line delivered in full takes no end reason")
    if end_reason is not None and end_reason not in LINE_END_REASONS:
        raise DeliveryInvalid("end_reason", f"one of {', '.join(LINE_END_REASONS)}")
    if ended_on > today:
        raise DeliveryInvalid("ended_on", f"{ended_on.isoformat()} is in the future")
    if line.started_on is not None and ended_on < line.started_on:
        raise DeliveryInvalid("ended_on", "before the line started")
    if ended_on < line.ordered_on:
        raise DeliveryInvalid("ended_on", "before the line was ordered")


@dataclass(frozen=True)
class Split:
    """A delivered line's cost and who pays which part."""

    cost_krw: int
    district_krw: int
    self_krw: int


def delivered_cost(policy: Policy, service: str, units: int) -> int:
    """What `units` of `service` cost at the policy year's unit price."""
    if units == 0:
        return 0
    return price_plan(policy, [(service, units)]).total_krw


def split(cost_krw: int, *, fee_support: str, self_pay_share: Fraction, cap_room_krw: int) -> Split:
    """Split a delivered cost into the district-paid and self-paid parts (domain.md,
    "Fee"): a full-support household's district pays all of it, a self-pay household's
    pays the part the resident's share leaves (none with the default share 1.0),
    rounded down to the won; either way the district pays at most what the person's
    annual cap still leaves, and the resident pays the rest."""
    if cost_krw < 0:
        raise ValueError("cost_krw must not be negative")
    resident_share = self_pay_share if fee_support == "self-pay" else Fraction(0)
    public_share = 1 - resident_share
    public = cost_krw * public_share.numerator // public_share.denominator
    district = min(public, max(0, cap_room_krw))
    return Split(cost_krw, district, cost_krw - district)


def end(
    line: Line,
    *,
    delivered_units: int,
    ended_on: date,
    end_reason: str | None,
    today: date,
    price: Split,
) -> Line:
    """open → ended, with what was delivered and what it cost (`price` from `split`)."""
    check_end(
        line,
        delivered_units=delivered_units,
        ended_on=ended_on,
        end_reason=end_reason,
        today=today,
    )
    return replace(
        line,
        status="ended",
        ended_on=ended_on,
        delivered_units=delivered_units,
        end_reason=end_reason,
        cost_krw=price.cost_krw,
        district_paid_krw=price.district_krw,
        self_paid_krw=price.self_krw,
    )


def first_to_start(before: Sequence[Line], after: Line) -> bool:
    """Whether `after` is the case's first line to start (others had not)."""
    return after.started_on is not None and not any(
        other.started_on is not None for other in before if other.line_no != after.line_no
    )


def all_ended(lines: Sequence[Line]) -> bool:
    return bool(lines) and all(line.status == "ended" for line in lines)


def nothing_delivered(lines: Sequence[Line]) -> bool:
    return all(not line.delivered_units for line in lines)


def delivered_line(line: Line, provider: ProviderRef | None) -> DeliveredLine:
    return DeliveredLine(
        line=line.line_no,
        service=line.service,  # type: ignore[arg-type]
        quantity=line.quantity,
        unit=line.unit,
        cost_krw=line.cost_krw or 0,
        provider=provider,
        planned_start=line.planned_start,
        started_on=line.started_on,
        ended_on=line.ended_on,
        delivered_units=line.delivered_units or 0,
        outcome=line.outcome or "not-delivered",
        end_reason=line.end_reason,  # type: ignore[arg-type]
        district_paid_krw=line.district_paid_krw or 0,
        self_paid_krw=line.self_paid_krw or 0,
    )


def fee_correction_problem(
    *, closed: bool, planned: bool, current: str, corrected: str
) -> tuple[str, str] | None:
    """Why a case's fee support may not be corrected now, as (code, message); None when
    it may. Only before the care plan: the plan is priced, split and counted against the
    annual cap on the fee support it was set with (issue 10)."""
    if closed:
        return "case-closed", "the case is finished: its fee support stays as it was"
    if planned:
        return (
            "care-plan-set",
            "the care plan is already set and priced: fee support can be corrected only "
            "before the care plan",
        )
    if corrected == current:
        return "invalid-request", f"fee_support is already {current}: nothing to correct"
    return None
