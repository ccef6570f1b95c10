"""Scripted referral mixes for the simulators: pure and seeded, no servers.

A *mix* says how many referrals of each kind to make (counts or ratios); a
*script* says, for one referral, what the hospital submits, what it sends later
and when (driven by the status updates it reads back), and what the
coordinators decide when they work the referral's tasks. The same seed (and
run id) gives the same scripts.

Kinds and where they end:

| kind | hospital | coordinators | terminal status |
|---|---|---|---|
| eligible, urgent | discharges after `services-ordered` | eligible, visits, default plan, every line delivered (the 2nd, 6th … eligible: the first line in part, the patient moved to a facility) | completed |
| ineligible | age < 50, a district outside Seoul, no consent; or (review) as eligible | (review variant) ineligible with a reason | rejected (cancelled for `declined-by-patient`) |
| postponed | moves the discharge beyond the horizon, then back | wait for the visit to be re-planned | completed |
| cancelled | cancels at a stage with a contract reason | default | cancelled |
| readmitted | discharges, readmits, discharges again | wait for the re-planned visit | completed |
| unreachable | discharges once the case is on hold as unreachable (the visit is missed) | fail contact until on hold, then plan and visit after discharge | completed |
| waitlisted | discharges after `services-ordered` | waitlist the plan once, then plan | completed |
| cap_exhausted | one person, referred again after each case ends | 14 facility days each time | completed …, then failed |
| could_not_deliver | as eligible | every other one: plan it and deliver nothing (variant `delivery`, the provider could not staff); the rest: could not deliver the plan (variant `plan`) | failed |

`Board` is the in-process meeting point when the hospital and the staff
simulators run together: the hospital publishes its scripts and what it has
seen, the coordinators look decisions up by referral.
"""

from __future__ import annotations

import random
import re
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from faker import Faker

from contracts.hospital_v1 import CancelReason
from services.tools.simulators.referrals import SEOUL_DONGS, FakeHospital

TERMINAL = ("completed", "cancelled", "failed", "rejected")

KINDS = (
    "eligible",
    "ineligible",
    "urgent",
    "postponed",
    "cancelled",
    "readmitted",
    "unreachable",
    "waitlisted",
    "cap_exhausted",
    "could_not_deliver",
)
# Ratios of the default mix (in referrals): every kind, and so every terminal status.
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "eligible": 6,
    "ineligible": 4,
    "urgent": 2,
    "postponed": 2,
    "cancelled": 3,
    "readmitted": 2,
    "unreachable": 2,
    "waitlisted": 2,
    "cap_exhausted": 3,
    "could_not_deliver": 2,
}
INELIGIBLE_VARIANTS = ("age", "area", "consent", "review")
REVIEW_REFUSALS = (
    "can-manage-alone",
    "family-caregiver-available",
    "covered-by-public-care",
    "declined-by-patient",
)
CANCEL_REASONS = tuple(reason.value for reason in CancelReason)
CANCEL_STAGES = ("triaged", "pre-discharge-visit-scheduled", "services-ordered")
OUTSIDE_DISTRICTS = ("Suwon-si", "Seongnam-si", "Goyang-si", "Bucheon-si")
SERVED_DISTRICTS = tuple(SEOUL_DONGS)
SERVICES = (
    "temporary_home_care",
    "short_term_facility",
    "accompaniment",
    "home_repair",
    "residential_convenience",
    "meal_delivery",
)
# Short-term facility stays are at most 14 days; three stays exhaust any year's cap
# (1.8 M KRW in 2025-2026: 14 days cost 1,036,840, the second stay fits only in part).
FACILITY_STAY = (("short_term_facility", 14),)
DEFAULT_CHAIN_LENGTH = 3
# Matches scheduling's default postponement horizon (CARELINK_POSTPONEMENT_HORIZON_DAYS).
HORIZON_DAYS = 14

TaskKind = Literal["review", "care-plan", "pre-discharge-visit", "post-discharge-visit", "delivery"]
# How the ordered services are delivered: every line in full; the first line in part (the
# rest in full); nothing at all (the case fails, could-not-deliver).
Delivery = Literal["full", "partial", "none"]
Action = Literal["discharge", "postpone", "return", "readmit", "cancel"]


@dataclass(frozen=True)
class FollowUp:
    """What the hospital sends once it has seen `on` for the `nth` time."""

    on: str
    action: Action
    nth: int = 1
    reason_code: str | None = None
    # For date moves: the new expected discharge date, in days from today.
    days: int | None = None
    # Not sent once the hospital has seen this business status (it took another path).
    unless: str | None = None


@dataclass(frozen=True)
class Gate:
    """A coordinator leaves a task of `task` kind alone until the hospital has seen
    `business_status` `count` times (so the hospital's own step comes first)."""

    task: TaskKind
    business_status: str
    count: int


@dataclass(frozen=True)
class Decisions:
    """What the coordinators decide for one referral; the defaults are the plain path."""

    review: Literal["eligible", "ineligible"] = "eligible"
    review_reason: str | None = None
    # Failed contact attempts on the pre-discharge visit (at the limit the case goes on hold
    # as unreachable; the console offers no reopening, so the hospital's discharge ends it).
    contact_failures: int = 0
    care_plan: Literal["plan", "waitlist", "could-not-deliver"] = "plan"
    plan_lines: tuple[tuple[str, int], ...] | None = None
    delivery: Delivery = "full"
    gates: tuple[Gate, ...] = ()


@dataclass(frozen=True)
class Script:
    index: int
    referral_id: str
    kind: str
    variant: str | None
    # Keyword overrides for FakeHospital.submission (no personal data).
    submission: dict[str, Any]
    follow_ups: tuple[FollowUp, ...]
    staff: Decisions
    expected_status: str
    expected_reason: str | None = None
    # Same-person chains: the key of the person, and the referral that must end first.
    person: str | None = None
    after: str | None = None

    def summary(self) -> dict[str, Any]:
        """What may be shown or logged: ids, kinds and codes, no personal data."""
        return {
            "referral_id": self.referral_id,
            "kind": self.kind,
            "variant": self.variant,
            "expected_status": self.expected_status,
            "expected_reason": self.expected_reason,
            "after": self.after,
        }


@dataclass(frozen=True)
class Mix:
    """Weights per kind: ratios, or exact counts when they add up to the count asked for."""

    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    chain_length: int = DEFAULT_CHAIN_LENGTH

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown kind(s): {', '.join(unknown)}; known: {', '.join(KINDS)}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("weights must not be negative")
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("at least one kind needs a positive weight")
        if self.chain_length < 1:
            raise ValueError("chain_length must be at least 1")

    @classmethod
    def parse(cls, text: str | None) -> Mix:
        """`default`, or `kind=weight,...` (e.g. `eligible=10,cancelled=2`); `default,kind=w`
        changes the default mix."""
        if not text or text.strip() == "default":
            return cls()
        weights: dict[str, float] = {}
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                continue
            if part == "default":
                weights = {**DEFAULT_WEIGHTS, **weights}
                continue
            name, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"expected kind=weight, got {part!r}")
            kind = name.strip().replace("-", "_")
            try:
                weights[kind] = float(value)
            except ValueError:
                raise ValueError(f"weight of {kind} is not a number: {value!r}") from None
        return cls(weights)

    def counts(self, total: int) -> dict[str, int]:
        """Referrals per kind for `total` referrals (largest remainder, in KINDS order).

        Every kind with a positive weight gets at least one referral (a whole chain
        for cap_exhausted) when `total` allows; cap_exhausted takes whole chains.
        """
        if total < 0:
            raise ValueError("count must not be negative")
        active = [k for k in KINDS if self.weights.get(k, 0) > 0]
        unit = {k: self.chain_length if k == "cap_exhausted" else 1 for k in active}
        weight_sum = sum(self.weights[k] for k in active)
        exact = {k: total * self.weights[k] / weight_sum for k in active}
        counts = {k: int(exact[k] // unit[k]) * unit[k] for k in active}

        def room() -> int:
            return total - sum(counts.values())

        # Every kind at least once (single referrals first, chains last), taking from
        # the kinds that have more than one when there is no room left.
        for k in sorted(active, key=lambda k: (unit[k], KINDS.index(k))):
            if counts[k]:
                continue
            while room() < unit[k]:
                donors = [d for d in active if unit[d] == 1 and counts[d] > 1]
                if not donors:
                    break
                counts[max(donors, key=lambda d: (counts[d], -KINDS.index(d)))] -= 1
            if room() >= unit[k]:
                counts[k] = unit[k]
        # The rest by largest remainder; what no chain fits goes to single referrals.
        by_remainder = sorted(active, key=lambda k: (-(exact[k] - counts[k]), KINDS.index(k)))
        while room() > 0:
            fits = [k for k in by_remainder if unit[k] <= room()]
            single = next((k for k in by_remainder if unit[k] == 1), "eligible")
            for k in fits or [single]:
                if room() >= unit.get(k, 1):
                    counts[k] = counts.get(k, 0) + unit.get(k, 1)
                if room() == 0:
                    break
        return {k: counts[k] for k in KINDS if counts.get(k)}


def generate(
    count: int,
    mix: Mix | None = None,
    *,
    seed: int | None = None,
    run_id: str | None = None,
    district: str | None = None,
) -> list[Script]:
    """`count` scripts in submission order. `run_id` makes the referral ids unique per run
    (default: derived from the seed, so the same seed gives the same ids). `district`
    puts every served patient in that district (one centre's queue), e.g. for a demo."""
    mix = mix or Mix()
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    rng = random.Random(seed)
    run = run_id or f"s{seed}"
    if not re.fullmatch(r"[A-Za-z0-9-]{1,40}", run):
        raise ValueError("run_id: 1..40 letters, digits or dashes")
    counts = mix.counts(count)
    plain: list[str] = []
    chains = 0
    for kind, n in counts.items():
        if kind == "cap_exhausted":
            chains = n // mix.chain_length
            plain += ["eligible"] * (n % mix.chain_length)
        else:
            plain += [kind] * n
    rng.shuffle(plain)
    # Chains start early (they are sequential), spread among the others.
    slots: list[list[str] | str] = list(plain)
    for c in reversed(range(chains)):
        slots.insert(c * len(plain) // (2 * chains), [f"chain-{c}"])

    scripts: list[Script] = []
    for slot in slots:
        if isinstance(slot, list):
            person = f"{run}-{slot[0]}"
            previous: str | None = None
            for link in range(mix.chain_length):
                script = _script(
                    "cap_exhausted", len(scripts), run, rng, person=person, after=previous
                )
                last = link == mix.chain_length - 1
                script = replace(
                    script,
                    variant=f"{link + 1}/{mix.chain_length}",
                    expected_status="failed" if last else "completed",
                    expected_reason="cap-exhausted" if last else None,
                )
                scripts.append(script)
                previous = script.referral_id
        else:
            scripts.append(_script(slot, len(scripts), run, rng))
    scripts = _deliveries(scripts)
    if district is not None:
        scripts = [_in_district(script, district) for script in scripts]
    return scripts


def _deliveries(scripts: list[Script]) -> list[Script]:
    """How the ordered services are delivered, by each kind's own count (so any mix with
    two of a kind has both): the 1st, 3rd … could_not_deliver referral is ordered and
    nothing of it delivered (the provider could not staff), the others cannot be planned;
    the 2nd, 6th … eligible referral has its first line delivered in part (the patient
    moved to a facility). Everything else is delivered in full."""
    seen: Counter[str] = Counter()
    shaped = []
    for script in scripts:
        nth = seen[script.kind]
        seen[script.kind] += 1
        if script.kind == "could_not_deliver" and nth % 2 == 0:
            script = replace(script, variant="delivery", staff=Decisions(delivery="none"))
        elif script.kind == "eligible" and nth % 4 == 1:
            script = replace(
                script,
                variant="partly-delivered",
                staff=replace(script.staff, delivery="partial"),
            )
        shaped.append(script)
    return shaped


def _in_district(script: Script, district: str) -> Script:
    if script.submission.get("district") not in SERVED_DISTRICTS:
        return script  # an outside-the-area script stays outside
    return replace(script, submission={**script.submission, "district": district})


def _script(
    kind: str,
    index: int,
    run: str,
    rng: random.Random,
    *,
    person: str | None = None,
    after: str | None = None,
) -> Script:
    referral_id = f"sim-{run}-{index:05d}"
    services = sorted(rng.sample(SERVICES, rng.randint(1, 3)))
    disabled = rng.random() < 0.1
    sub: dict[str, Any] = {
        "age": rng.randint(30, 49) if disabled else rng.randint(50, 95),
        "registered_disability": disabled,
        "district": rng.choice(SERVED_DISTRICTS),
        "household_size": rng.choice([1, 1, 1, 2, 2, 3, 4]),
        "services": services,
        "priority": "routine",
        "discharge_in_days": rng.randint(3, 10),
    }
    # Most households at or below the median (the district pays), some above (self-pay).
    sub["monthly_income"] = (
        rng.randrange(400_000, 2_000_000, 10_000)
        if rng.random() < 0.75
        else rng.randrange(7_000_000, 12_000_000, 10_000)
    )
    # Every referral still open once services are ordered is discharged, whatever the
    # script: coordinators without the scripts (another process) take the plain path.
    discharge = (FollowUp("services-ordered", "discharge"),)
    staff = Decisions()
    follow: tuple[FollowUp, ...] = discharge
    variant: str | None = None
    status, reason = "completed", None

    if kind == "urgent":
        sub["priority"] = "urgent"
    elif kind == "ineligible":
        variant = rng.choice(INELIGIBLE_VARIANTS)
        status = "rejected"
        if variant == "age":
            sub.update(age=rng.randint(20, 49), registered_disability=False)
            reason = "ineligible-age"
        elif variant == "area":
            sub["district"] = rng.choice(OUTSIDE_DISTRICTS)
            reason = "outside-service-area"
        elif variant == "consent":
            sub["consent"] = False
            reason = "missing-consent"
        else:
            reason = rng.choice(REVIEW_REFUSALS)
            staff = Decisions(review="ineligible", review_reason=reason)
            status = "cancelled" if reason == "declined-by-patient" else "rejected"
    elif kind == "postponed":
        follow = (
            FollowUp(
                "pre-discharge-visit-scheduled",
                "postpone",
                days=HORIZON_DAYS + rng.randint(6, 45),
            ),
            FollowUp("discharge-postponed", "return", days=rng.randint(3, 10)),
            *discharge,
        )
        staff = Decisions(gates=(Gate("pre-discharge-visit", "pre-discharge-visit-scheduled", 2),))
    elif kind == "cancelled":
        variant = rng.choice(CANCEL_STAGES)
        reason = rng.choice(CANCEL_REASONS)
        follow = (FollowUp(variant, "cancel", reason_code=reason),)
        status = "cancelled"
    elif kind == "readmitted":
        follow = (
            *discharge,
            FollowUp("post-discharge-visit-scheduled", "readmit", days=rng.randint(3, 10)),
            FollowUp("readmitted", "discharge"),
        )
        staff = Decisions(
            gates=(Gate("post-discharge-visit", "post-discharge-visit-scheduled", 2),)
        )
    elif kind == "unreachable":
        # Coordinators cannot reach the person before discharge: on hold as unreachable, the
        # hospital discharges them (the pre-discharge visit is missed), the care plan and the
        # post-discharge visit follow. Staff without the script visit at once: the usual
        # discharge once services are ordered.
        follow = (
            FollowUp("unreachable", "discharge"),
            FollowUp("services-ordered", "discharge", unless="unreachable"),
        )
        staff = Decisions(contact_failures=3)
    elif kind == "waitlisted":
        staff = Decisions(care_plan="waitlist")
    elif kind == "could_not_deliver":
        # No plan can be delivered (`_deliveries` makes every other one a plan ordered
        # of which nothing is delivered).
        variant = "plan"
        staff = Decisions(care_plan="could-not-deliver")
        status, reason = "failed", "could-not-deliver"
    elif kind == "cap_exhausted":
        sub.update(
            services=["short_term_facility"],
            household_size=1,
            monthly_income=rng.randrange(400_000, 1_500_000, 10_000),
            age=rng.randint(65, 90),
            registered_disability=False,
        )
        staff = Decisions(plan_lines=FACILITY_STAY)
    elif kind != "eligible":
        raise ValueError(f"unknown kind {kind!r}")
    return Script(
        index=index,
        referral_id=referral_id,
        kind=kind,
        variant=variant,
        submission=sub,
        follow_ups=follow,
        staff=staff,
        expected_status=status,
        expected_reason=reason,
        person=person,
        after=after,
    )


class SubmissionBuilder:
    """Full `referral.submitted` data for scripts: personal values from Faker's ko_KR
    locale (emails on the reserved example domains), one person per script except
    for same-person chains. Pure: the caller passes the time."""

    def __init__(self, hospital_id: str, *, seed: int | None = None) -> None:
        self.hospital = FakeHospital(hospital_id, seed=seed)
        self.faker = Faker("ko_KR")
        if seed is not None:
            self.faker.seed_instance(seed + 1)
        self._people: dict[str, dict[str, Any]] = {}
        self._taken: set[tuple[str, str]] = set()

    def build(self, script: Script, now: datetime) -> dict[str, Any]:
        options = dict(script.submission)
        consent = options.pop("consent", True)
        data = self.hospital.submission(
            referral_id=script.referral_id, submitted_at=now, consent=consent, **options
        )
        data["social_worker"]["email"] = self.faker.safe_email()
        patient = data["patient"]
        if script.person is not None and script.person in self._people:
            patient.update(self._people[script.person])
        else:
            # A different person each time: a clash would join another script's case.
            while (patient["name"], patient["birth_date"]) in self._taken:
                patient["name"] = self.faker.name()
            self._taken.add((patient["name"], patient["birth_date"]))
            if script.person is not None:
                self._people[script.person] = {
                    "name": patient["name"],
                    "birth_date": patient["birth_date"],
                    "sex": patient["sex"],
                    "phone": patient["phone"],
                    "address": patient["address"],
                }
        return data


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


def discharge_date(today: date, days: int) -> str:
    return (today + timedelta(days=days)).isoformat()


class Board:
    """Scripts and what the hospital has seen, shared in one process; and which referral a
    case is (the hospital learns the case id from its updates, the coordinators see only
    case ids in their queue)."""

    def __init__(self) -> None:
        self._scripts: dict[tuple[str, str], Script] = {}
        self._seen: dict[tuple[str, str], Counter[str]] = {}
        self._cases: dict[str, tuple[str, str]] = {}

    def link(self, case_id: str, hospital_id: str, referral_id: str) -> None:
        """The case of a referral (the first referral of a case shared by two stays its own)."""
        self._cases.setdefault(case_id, (hospital_id, referral_id))

    def referral_of(self, case_id: str) -> tuple[str, str] | None:
        """(hospital_id, referral_id) of the case, once the hospital has heard of it."""
        return self._cases.get(case_id)

    def publish(self, hospital_id: str, scripts: list[Script]) -> None:
        for script in scripts:
            self._scripts[(hospital_id, script.referral_id)] = script

    def script(self, hospital_id: str, referral_id: str) -> Script | None:
        return self._scripts.get((hospital_id, referral_id))

    def saw(self, hospital_id: str, referral_id: str, business_status: str) -> None:
        self._seen.setdefault((hospital_id, referral_id), Counter())[business_status] += 1

    def seen(self, hospital_id: str, referral_id: str, business_status: str) -> int:
        return self._seen.get((hospital_id, referral_id), Counter())[business_status]

    def gate_open(self, hospital_id: str, referral_id: str, task: str) -> bool:
        script = self.script(hospital_id, referral_id)
        if script is None:
            return True
        return all(
            self.seen(hospital_id, referral_id, gate.business_status) >= gate.count
            for gate in script.staff.gates
            if gate.task == task
        )

    def __len__(self) -> int:
        return len(self._scripts)
