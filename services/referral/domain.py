"""Pure care-plan rules for the referral service."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.referral import PlanLine
from services.lib.policy import CapFit, Policy, fit_to_cap

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
