"""Pure Care SOS rules: age, eligibility, fee support, prices and the annual cap.

Every number comes from the policy in force on the referral's submission date
(``PolicyBook.for_date(seoul_date(submitted_at))``); nothing here is hard-coded
programme data.  The rules are those of /work/shared/domain.md ("Who is
eligible, who pays" and "Services").  A rule that needs a value missing from
the policy file raises :class:`PolicyIncomplete`; invalid input raises
:class:`RuleError`.  No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from typing import Literal, NamedTuple, cast

from pydantic import BaseModel, ConfigDict

from services.lib.policy.policy import (
    SERVICE_CODES,
    FeeSupport,
    Policy,
    PolicyIncomplete,
    RuleError,
    ServiceCode,
    ServiceUnit,
)

__all__ = [
    "MAX_HOUSEHOLD_SIZE",
    "SEOUL_TZ",
    "CapFit",
    "FittedLine",
    "LineCost",
    "Payer",
    "PlanCost",
    "Refusal",
    "ServiceLine",
    "age_band",
    "age_on",
    "check_eligibility",
    "fee_support",
    "fit_to_cap",
    "median_income",
    "price_plan",
    "seoul_date",
]

SEOUL_TZ = timezone(timedelta(hours=9), "KST")
"""Korea Standard Time (UTC+9, no daylight saving): the clock of submission dates."""

MAX_HOUSEHOLD_SIZE = 10
"""The hospital contract accepts household sizes 1..10."""

Payer = Literal["district", "resident", "shared"]

_UNIT_LABEL: dict[str, str] = {
    "per_30_min": "half-hours",
    "per_day": "days",
    "per_hour": "hours",
    "per_meal": "meals",
}


class _Result(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _require_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(f"{name} must be an integer, got {type(value).__name__}")
    return value


def _require_date(name: str, value: object) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise RuleError(
            f"{name} must be a date (not a datetime; use seoul_date() for instants), "
            f"got {type(value).__name__}"
        )
    return value


# ---------------------------------------------------------------------------
# Dates and ages
# ---------------------------------------------------------------------------


def seoul_date(instant: datetime) -> date:
    """The calendar date of ``instant`` in Seoul (KST, UTC+9).

    The policy year and the patient's age are taken on the submission *date*
    in Seoul: 2025-12-31T16:00:00Z is already 1 January 2026 there.
    A naive datetime is refused: its date would be ambiguous.
    """
    if not isinstance(instant, datetime):
        raise RuleError(f"seoul_date() takes a datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise RuleError("seoul_date() needs a timezone-aware datetime (with an offset)")
    return instant.astimezone(SEOUL_TZ).date()


def age_on(birth_date: date, on_date: date) -> int:
    """Age in completed years on ``on_date`` (만 나이, exact birthday arithmetic).

    A person turns N on their birthday: someone born 1975-03-10 is 50 on
    2025-03-10 and 49 on 2025-03-09.  A person born on 29 February turns a
    year older on 1 March in common years (Korean Civil Act arts. 158 and
    160(3): a period whose last month has no corresponding day ends with that
    month's last day, so the new year of age starts on 1 March).
    """
    birth = _require_date("birth_date", birth_date)
    on = _require_date("on_date", on_date)
    if on < birth:
        raise RuleError("on_date is before birth_date")
    before_birthday = (on.month, on.day) < (birth.month, birth.day)
    return on.year - birth.year - int(before_birthday)


def age_band(age: int) -> str:
    """The age band used on internal topics instead of a birth date.

    "0-5" below the disability minimum, "6-9", then five-year bands
    ("50-54", "65-69", ...) up to "80-84", and "85+".
    """
    value = _require_int("age", age)
    if value < 0:
        raise RuleError("age must not be negative")
    if value < 6:
        return "0-5"
    if value < 10:
        return "6-9"
    if value >= 85:
        return "85+"
    low = value // 5 * 5
    return f"{low}-{low + 4}"


# ---------------------------------------------------------------------------
# Eligibility
# ---------------------------------------------------------------------------


class Refusal(_Result):
    """Why a referral is rejected on the automatic rules (hospital contract reason codes)."""

    reason_code: Literal["ineligible-age", "outside-service-area"]
    reason: str


def check_eligibility(
    policy: Policy,
    *,
    age: int,
    registered_disability: bool,
    district: str,
) -> Refusal | None:
    """Apply the automatic eligibility rules; None means eligible on them.

    Rules (domain.md, "Who is eligible"):

    * age ``>= eligibility.general_min_age`` (50: middle-aged, elderly 65+
      included), or a registered disabled resident aged
      ``>= eligibility.registered_disability_min_age`` (6).  ``age`` is
      :func:`age_on` the submission date, so a person exactly 50 that day is
      eligible and one day before the 50th birthday is not;
    * the registered address's ``district`` is one of the policy's
      ``served_districts`` (exact spelling, e.g. "Songpa-gu").

    Age is checked first, then the service area.  Consent and the needs
    judged by the reviewing staff member are checked elsewhere.  The reason
    text carries no personal data (no age, no birth date).
    """
    value = _require_int("age", age)
    rules = policy.eligibility
    old_enough = value >= rules.general_min_age or (
        registered_disability and value >= rules.registered_disability_min_age
    )
    if not old_enough:
        return Refusal(
            reason_code="ineligible-age",
            reason=(
                f"Care SOS serves residents aged {rules.general_min_age} or older, and "
                f"registered disabled residents aged {rules.registered_disability_min_age} "
                "or older; the patient is younger on the submission date"
            ),
        )
    if not policy.serves(district):
        return Refusal(
            reason_code="outside-service-area",
            reason=f"the registered address's district {district!r} is not served by carelink",
        )
    return None


# ---------------------------------------------------------------------------
# Income and fee support
# ---------------------------------------------------------------------------


def _median_cell(policy: Policy, size: int) -> int:
    value = policy.median_income_krw.get(size)
    if value is None:
        raise PolicyIncomplete(
            policy.year,
            f"median_income_krw.{size}",
            f"needed for the standard median income of a {size}-person household",
        )
    return value


def median_income(policy: Policy, household_size: int) -> int:
    """Standard median income (KRW per month) for a household of 1..10 people.

    Sizes 1..6 come from the policy file (a 2026 cell may have been filled
    from the fallback year, see ``Policy.gaps``).  Larger households: "add
    the difference between the 6- and 5-person rows per extra person"
    (domain.md), i.e. ``m(n) = m(6) + (n - 6) * (m(6) - m(5))`` for n = 7..10.
    """
    size = _require_int("household_size", household_size)
    if not 1 <= size <= MAX_HOUSEHOLD_SIZE:
        raise RuleError(f"household_size must be 1..{MAX_HOUSEHOLD_SIZE}, got {size}")
    if size <= 6:
        return _median_cell(policy, size)
    six = _median_cell(policy, 6)
    five = _median_cell(policy, 5)
    return six + (size - 6) * (six - five)


def fee_support(policy: Policy, *, household_size: int, monthly_income: int) -> FeeSupport:
    """Fee class: ``"full"`` at or below the threshold % of the median, else ``"self-pay"``.

    Rule (domain.md, "Fee"): income at or below 100% (``fee.full_support_max_median_pct``)
    of the standard median income for the household size -> the district
    pays in full, up to the annual cap; above it -> the resident pays
    (``fee.self_pay_share``).  Exact integer arithmetic: 1 KRW above is self-pay.
    """
    income = _require_int("monthly_income", monthly_income)
    if income < 0:
        raise RuleError("monthly_income must not be negative")
    median = median_income(policy, household_size)
    if income * 100 <= median * policy.fee.full_support_max_median_pct:
        return "full"
    return "self-pay"


# ---------------------------------------------------------------------------
# Prices
# ---------------------------------------------------------------------------


class ServiceLine(NamedTuple):
    """A requested line: a service code and a quantity in the service's unit."""

    service_code: str
    quantity: int


class LineCost(_Result):
    service_code: str
    quantity: int
    unit: ServiceUnit
    unit_price_krw: int
    cost_krw: int


class PlanCost(_Result):
    lines: tuple[LineCost, ...]
    total_krw: int


def price_plan(policy: Policy, lines: Iterable[tuple[str, int]]) -> PlanCost:
    """Price each ``(service_code, quantity)`` line at the policy's unit prices.

    ``quantity`` is a whole number (>= 1) of the service's unit: half-hours
    for temporary_home_care, days for short_term_facility, hours for
    accompaniment / home_repair / residential_convenience, meals for
    meal_delivery.  A short_term_facility line is one stay: more than
    ``max_units_per_stay`` (14) days raises RuleError (domain.md: "at most 14
    days a stay").  A missing unit price raises PolicyIncomplete.
    """
    priced: list[LineCost] = []
    for index, line in enumerate(lines):
        if not isinstance(line, tuple) or len(line) != 2:
            raise RuleError(f"line {index} must be a (service_code, quantity) pair")
        code, raw_quantity = line
        if code not in SERVICE_CODES:
            raise RuleError(f"line {index}: unknown service code {code!r}")
        quantity = _require_int(f"line {index} quantity", raw_quantity)
        if quantity < 1:
            raise RuleError(f"line {index}: quantity must be at least 1, got {quantity}")
        service = policy.services[cast(ServiceCode, code)]
        limit = service.max_units_per_stay
        if limit is not None and quantity > limit:
            raise RuleError(
                f"line {index}: {code} for {quantity} {_UNIT_LABEL[service.unit]} exceeds "
                f"the maximum of {limit} {_UNIT_LABEL[service.unit]} per stay"
            )
        if service.price_krw is None:
            raise PolicyIncomplete(
                policy.year, f"services.{code}.price_krw", f"needed to price {code}"
            )
        priced.append(
            LineCost(
                service_code=str(code),
                quantity=quantity,
                unit=service.unit,
                unit_price_krw=service.price_krw,
                cost_krw=quantity * service.price_krw,
            )
        )
    return PlanCost(lines=tuple(priced), total_krw=sum(line.cost_krw for line in priced))


# ---------------------------------------------------------------------------
# Annual cap
# ---------------------------------------------------------------------------


class FittedLine(LineCost):
    """A line that fits, with who pays which part of its cost."""

    requested_quantity: int
    district_pays_krw: int
    resident_pays_krw: int
    paid_by: Payer


class CapFit(_Result):
    """The part of a request that fits the annual cap, and who pays it.

    ``lines`` fit (in request order, the last possibly reduced); ``cut`` is
    what was requested but does not fit (service code and quantity left out).
    ``partial``: some but not all of the request fits.  ``nothing_fits``: no
    unit fits at all; the caller reports ``failed`` / ``cap-exhausted``.
    """

    fee_support: FeeSupport
    annual_cap_krw: int
    already_used_krw: int
    cap_remaining_before_krw: int
    lines: tuple[FittedLine, ...]
    cut: tuple[ServiceLine, ...]
    partial: bool
    nothing_fits: bool
    total_krw: int
    district_total_krw: int
    resident_total_krw: int
    cap_remaining_after_krw: int
    paid_by: Payer


def _payer(district: int, resident: int) -> Payer:
    if resident == 0:
        return "district"
    if district == 0:
        return "resident"
    return "shared"


def _public_part(cost: int, public_share: Fraction) -> int:
    """The district's part of ``cost``, rounded down to the won (the resident pays the rest)."""
    return cost * public_share.numerator // public_share.denominator


def _max_units(requested: int, unit_price: int, public_share: Fraction, room: int) -> int:
    """The most whole units (<= requested) whose public part fits in ``room`` KRW."""
    if public_share == 0:
        return requested
    # floor(q * price * share) <= room  <=>  q * price * num <= (room + 1) * den - 1
    most = ((room + 1) * public_share.denominator - 1) // (unit_price * public_share.numerator)
    return max(0, min(requested, most))


def fit_to_cap(
    policy: Policy,
    *,
    requested_lines: Iterable[tuple[str, int]],
    already_used_this_year: int,
    fee_support: FeeSupport,
    already_used_by_service: Mapping[str, int] | None = None,
) -> CapFit:
    """Fit a priced request under the annual cap of publicly paid services.

    Rule (domain.md): the district pays in full for a full-support household
    "up to the annual cap" (``annual_cap_krw``: 1.6 M in 2022-2024, 1.8 M from
    2025) per person and year; from 2025 there are no per-service caps.

    Semantics:

    * ``already_used_this_year`` is the KRW already publicly paid or committed
      for this person in the same policy year across all their cases; the
      room left is ``annual_cap_krw - already_used_this_year`` (never below 0).
    * Who pays: for ``"full"`` the district pays each fitted line entirely.
      For ``"self-pay"`` the resident pays ``fee.self_pay_share`` of each line
      and the district the rest (rounded down to the won); with the default
      share 1.0 the district pays nothing, the cap is not touched, and every
      line fits.
    * Only the district's part counts against the cap.  Lines are taken
      greedily in the given order (the hospital's order of priority).  The
      first line whose district part does not fit in full is reduced to the
      whole units that do fit (possibly none); it and every later line are
      then cut, even if a later, cheaper line would still fit.
    * ``per_service_caps_krw`` (empty from 2025) limits the district's part
      per service code as well, counting ``already_used_by_service``; when it
      is unknown (null, 2022-2024) and the district pays anything,
      PolicyIncomplete is raised.
    * ``nothing_fits`` (no unit fits) -> the caller reports ``failed`` /
      ``cap-exhausted``; ``partial`` -> some of the request was cut.
    """
    used = _require_int("already_used_this_year", already_used_this_year)
    if used < 0:
        raise RuleError("already_used_this_year must not be negative")
    if fee_support not in ("full", "self-pay"):
        raise RuleError(f"fee_support must be 'full' or 'self-pay', got {fee_support!r}")
    plan = price_plan(policy, requested_lines)
    if not plan.lines:
        raise RuleError("requested_lines is empty: there is nothing to fit")

    resident_share = (
        Fraction(policy.fee.self_pay_share) if fee_support == "self-pay" else Fraction(0)
    )
    public_share = 1 - resident_share
    cap = policy.annual_cap_krw
    remaining = max(0, cap - used)
    remaining_before = remaining

    service_room: dict[str, int] = {}
    if public_share > 0:
        caps = policy.per_service_caps_krw
        if caps is None:
            raise PolicyIncomplete(
                policy.year, "per_service_caps_krw", "needed to fit publicly paid services"
            )
        by_service = already_used_by_service or {}
        for code, limit in caps.items():
            spent = _require_int(f"already_used_by_service[{code}]", by_service.get(code, 0))
            service_room[code] = max(0, limit - spent)

    fitted: list[FittedLine] = []
    cut: list[ServiceLine] = []
    stopped = False
    for line in plan.lines:
        if stopped:
            cut.append(ServiceLine(line.service_code, line.quantity))
            continue
        room = remaining
        if line.service_code in service_room:
            room = min(room, service_room[line.service_code])
        quantity = _max_units(line.quantity, line.unit_price_krw, public_share, room)
        if quantity > 0:
            cost = quantity * line.unit_price_krw
            district = _public_part(cost, public_share)
            resident = cost - district
            remaining -= district
            if line.service_code in service_room:
                service_room[line.service_code] -= district
            fitted.append(
                FittedLine(
                    service_code=line.service_code,
                    quantity=quantity,
                    unit=line.unit,
                    unit_price_krw=line.unit_price_krw,
                    cost_krw=cost,
                    requested_quantity=line.quantity,
                    district_pays_krw=district,
                    resident_pays_krw=resident,
                    paid_by=_payer(district, resident),
                )
            )
        if quantity < line.quantity:
            cut.append(ServiceLine(line.service_code, line.quantity - quantity))
            stopped = True

    district_total = sum(f.district_pays_krw for f in fitted)
    resident_total = sum(f.resident_pays_krw for f in fitted)
    return CapFit(
        fee_support=fee_support,
        annual_cap_krw=cap,
        already_used_krw=used,
        cap_remaining_before_krw=remaining_before,
        lines=tuple(fitted),
        cut=tuple(cut),
        partial=bool(fitted) and bool(cut),
        nothing_fits=not fitted,
        total_krw=district_total + resident_total,
        district_total_krw=district_total,
        resident_total_krw=resident_total,
        cap_remaining_after_krw=remaining,
        paid_by=_payer(district_total, resident_total),
    )
