"""The five scenarios: what fault, when, against what. Plans are drawn from the
seed before anything runs, so a run states its faults up front and the same seed
gives the same plan."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.tools.stack.deployables import SERVICES

from .faults import Faults, Instance

BROKER_FREEZE_S = 15.0
DATABASE_CLOSED_S = 30.0


@dataclass(frozen=True)
class Step:
    """One planned fault."""

    at_s: float  # from the start of the load
    action: str  # kill-restart | kill | freeze-broker | restart-postgres | close-database | pause
    target: str  # a service, "service#2", "broker" or "postgres"
    duration_s: float = 0.0  # how long it lasts (for kill-restart: until the restart)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at_s": round(self.at_s, 1),
            "action": self.action,
            "target": self.target,
            "duration_s": round(self.duration_s, 1),
        }


@dataclass(frozen=True)
class PlanContext:
    window_s: float  # how long the hospitals take to submit everything
    quick: bool
    target: str | None  # a service chosen on the command line, for one-target scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    plan: Callable[[random.Random, PlanContext], list[Step]]
    # The shortest submission window that leaves room for the faults (quick, full).
    min_window_s: tuple[float, float]
    needs_embedded: bool = False
    setup: Callable[[Faults], Awaitable[None]] | None = None


def _kill_plan(rng: random.Random, ctx: PlanContext) -> list[Step]:
    """Every service SIGKILLed several times at random moments, restarted after a pause."""
    kills = 2 if ctx.quick else 3
    start, end = 0.08 * ctx.window_s, 0.85 * ctx.window_s
    slot = (end - start) / kills
    steps = []
    for service in SERVICES:
        for k in range(kills):
            # One kill per slot, not in its last 6 s: the restart must be up before the next.
            at = start + k * slot + rng.uniform(0, max(0.0, slot - 8.0))
            steps.append(Step(at, "kill-restart", service, rng.uniform(0.2, 2.5)))
    return sorted(steps, key=lambda s: s.at_s)


def _two_instances_plan(rng: random.Random, ctx: PlanContext) -> list[Step]:
    """A second instance of every service shares its group; one of each pair is killed."""
    return sorted(
        (
            Step(
                rng.uniform(0.3, 0.6) * ctx.window_s,
                "kill",
                rng.choice([service, f"{service}#2"]),
            )
            for service in SERVICES
        ),
        key=lambda s: s.at_s,
    )


async def _two_instances_setup(faults: Faults) -> None:
    await asyncio.gather(*(faults.start_extra(service) for service in SERVICES))


def _broker_plan(rng: random.Random, ctx: PlanContext) -> list[Step]:
    return [Step(rng.uniform(0.3, 0.45) * ctx.window_s, "freeze-broker", "broker", BROKER_FREEZE_S)]


def _postgres_plan(rng: random.Random, ctx: PlanContext) -> list[Step]:
    service = ctx.target or rng.choice(SERVICES)
    return [
        Step(rng.uniform(0.15, 0.3) * ctx.window_s, "restart-postgres", "postgres"),
        Step(rng.uniform(0.45, 0.55) * ctx.window_s, "close-database", service, DATABASE_CLOSED_S),
    ]


def _slow_consumer_plan(rng: random.Random, ctx: PlanContext) -> list[Step]:
    service = ctx.target or rng.choice(SERVICES)
    paused = 20.0 if ctx.quick else 40.0
    return [Step(rng.uniform(0.25, 0.4) * ctx.window_s, "pause", service, paused)]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "kill",
            "each service SIGKILLed at random moments, several times, and restarted",
            _kill_plan,
            (60.0, 100.0),
        ),
        Scenario(
            "two-instances",
            "two instances of each service in one consumer group, one of each killed mid-run",
            _two_instances_plan,
            (45.0, 90.0),
            setup=_two_instances_setup,
        ),
        Scenario(
            "broker-freeze",
            f"the broker frozen (SIGSTOP) for {BROKER_FREEZE_S:.0f} s, then resumed (SIGCONT)",
            _broker_plan,
            (50.0, 90.0),
            needs_embedded=True,
        ),
        Scenario(
            "postgres",
            "PostgreSQL restarted mid-run; one service's database refusing connections "
            f"for {DATABASE_CLOSED_S:.0f} s",
            _postgres_plan,
            (80.0, 110.0),
            needs_embedded=True,
        ),
        Scenario(
            "slow-consumer",
            "one service paused (SIGSTOP) so its lag builds, then resumed (SIGCONT) to drain",
            _slow_consumer_plan,
            (60.0, 100.0),
        ),
    )
}


# -- carrying a plan out ------------------------------------------------------------------


async def execute(steps: list[Step], faults: Faults, stop: asyncio.Event) -> list[str]:
    """Carry out the plan: steps against one target in order, targets side by side.
    Returns what went wrong (a restart that never became ready, …)."""
    by_target: dict[str, list[Step]] = defaultdict(list)
    for step in steps:
        by_target[_resource(step)].append(step)
    results = await asyncio.gather(
        *(_run_target(target_steps, faults, stop) for target_steps in by_target.values()),
        return_exceptions=True,
    )
    errors = []
    for result in results:
        if isinstance(result, BaseException):
            errors.append(f"fault injection failed: {type(result).__name__}: {result}")
    return errors


def _resource(step: Step) -> str:
    # A PostgreSQL restart and a closed database touch one server: one after the other.
    return "postgres" if step.action in ("restart-postgres", "close-database") else step.target


async def _run_target(steps: list[Step], faults: Faults, stop: asyncio.Event) -> None:
    for step in sorted(steps, key=lambda s: s.at_s):
        if not await faults.sleep_until(step.at_s, stop):
            return
        await _apply(step, faults)


async def _apply(step: Step, faults: Faults) -> None:
    if step.action in ("kill-restart", "kill", "pause"):
        instance = _instance(faults, step.target)
        if step.action == "pause":
            faults.pause(instance)
            try:
                await asyncio.sleep(step.duration_s)
            finally:
                faults.resume(instance)
            return
        await faults.kill(instance)
        if step.action == "kill-restart":
            await asyncio.sleep(step.duration_s)
            await faults.restart(instance)
        return
    if step.action == "freeze-broker":
        await faults.freeze_broker()
        try:
            await asyncio.sleep(step.duration_s)
        finally:
            await faults.thaw_broker()
        return
    if step.action == "restart-postgres":
        await faults.restart_postgres()
        return
    if step.action == "close-database":
        await faults.close_database(step.target)
        try:
            await asyncio.sleep(step.duration_s)
        finally:
            await faults.open_database(step.target)
        return
    raise ValueError(f"unknown fault action {step.action!r}")


def _instance(faults: Faults, label: str) -> Instance:
    service, _, index = label.partition("#")
    if not index:
        return faults.instance(service)
    for extra in faults.extra:
        if extra.label == label:
            return extra
    raise LookupError(f"no instance {label}")


async def ensure_running(faults: Faults) -> list[str]:
    """After the faults: every service of the system runs (restarting one a failed restart
    left down), unless a live extra instance of it carries on."""
    restarted = []
    for service in SERVICES:
        primary = faults.instance(service)
        if primary.process.running():
            continue
        if any(e.process.running() for e in faults.extra if e.process.name == service):
            continue
        await faults.restart(primary)
        restarted.append(service)
    return restarted
