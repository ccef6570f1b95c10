"""One scenario from start to verdict: a fresh system, the load, the faults, the wait
for quiet, the facts, the verification.

Each scenario gets its own system (its own broker, PostgreSQL, databases and
consumer groups under a unique prefix) so one scenario's damage can never be
counted against another, and a broken scenario cannot poison the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.lib.runtime.settings import REPO_ROOT
from services.tools.simulators.accounts import StaffSetup, prepare, simulated_centres
from services.tools.stack.system import CONSOLE_CALLS, LocalSystem, SystemInfo

from .facts import (
    DB_ERRORS,
    fingerprint,
    log_lines,
    log_warnings,
    read_databases,
    read_updates,
    wait_quiet,
)
from .faults import Faults
from .frontdoor import FrontDoor
from .load import Load
from .scenarios import PlanContext, Scenario, Step, ensure_running, execute
from .verify import (
    HARNESS,
    INCONCLUSIVE,
    PASS,
    PRODUCT_KINDS,
    HarnessFacts,
    Problem,
    Verification,
    verify,
)

# What the system sustains on two shared cores with every fault off: about 17
# referrals a second end to end. Submitting faster only builds a backlog.
SUSTAINED_RATE = 17.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Options:
    referrals: int
    quick: bool
    seed: int
    hospitals: list[str]
    base_dir: Path
    infra: str | None = None
    timeout_s: float | None = None
    quiet_timeout_s: float = 120.0
    target: str | None = None
    progress_interval_s: float = 5.0
    coordinators: int = 16
    keep_data: bool = False
    deadline: float = float("inf")  # time.monotonic() by which everything must be over


@dataclass
class ScenarioResult:
    name: str
    title: str
    verdict: str
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: list[dict[str, Any]] = field(default_factory=list)
    faults: list[dict[str, Any]] = field(default_factory=list)
    load: dict[str, Any] = field(default_factory=dict)
    system_dir: str = ""
    infrastructure: str = ""
    # A digest of the product's source when the scenario started (see code_state).
    code: str = ""
    duration_s: float = 0.0
    log_warnings: dict[str, dict[str, int]] = field(default_factory=dict)
    log_evidence: dict[str, list[str]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# What the services run: a file changed during a scenario means processes restarted by the
# faults may run other code than those started before (colleagues edit the tree).
PRODUCT_CODE = (
    "contracts",
    "services/lib/runtime",
    "services/lib/tasks",
    "services/lib/policy",
    "services/intake",
    "services/referral",
    "services/scheduling",
    "services/outcome",
    "services/console",
    "deploy/config",
)


def code_state() -> dict[str, str]:
    """A digest of every product source file, by path."""
    state: dict[str, str] = {}
    for top in PRODUCT_CODE:
        for path in sorted((REPO_ROOT / top).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".sql", ".yaml"):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
                state[str(path.relative_to(REPO_ROOT))] = digest
    return state


def code_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def window_for(scenario: Scenario, options: Options) -> float:
    shortest = scenario.min_window_s[0 if options.quick else 1]
    return max(shortest, options.referrals / SUSTAINED_RATE)


def load_timeout(window_s: float, options: Options) -> float:
    if options.timeout_s is not None:
        return options.timeout_s
    return window_s + max(240.0, options.referrals * 0.25)


def prepare_staff(directory: Path, coordinators: int) -> StaffSetup:
    """`coordinators` simulated coordinators in all, spread over the centres the simulated
    hospitals refer to (at least one each)."""
    centres = simulated_centres()
    return prepare(directory, centres, max(1, math.ceil(coordinators / len(centres))))


class LiveInstances:
    """Where a service's running instances listen: the system's own, then the extra
    instances a scenario started (read by the front door's thread, per connection)."""

    def __init__(self, system: LocalSystem) -> None:
        self.system = system
        self.faults: Faults | None = None

    def ports_of(self, service: str) -> Callable[[], list[int]]:
        def ports() -> list[int]:
            first = self.system.services.get(service)
            extra = [i.process for i in self.faults.extra] if self.faults else []
            return [
                int(process.env["CARELINK_HEALTH_PORT"])
                for process in [first, *extra]
                if process is not None and process.name == service and process.running()
            ]

        return ports


def check_loopback(info: SystemInfo) -> None:
    hosts = [part.rsplit(":", 1)[0].strip("[]") for part in info.kafka_bootstrap.split(",")]
    hosts.append(urlsplit(info.postgres_admin_url).hostname or "")
    for url in info.databases.values():
        hosts.append(urlsplit(url).hostname or "")
    outside = sorted({h for h in hosts if h not in LOOPBACK})
    if outside:
        raise RuntimeError(f"chaos runs on loopback only; refusing servers on {outside}")


def run_scenario(
    scenario: Scenario, index: int, token: str, options: Options, abort: threading.Event
) -> ScenarioResult:
    """Start a system, run the scenario against it, stop it. Never raises."""
    started = time.monotonic()
    base = options.base_dir / f"{index}-{scenario.name}"
    result = ScenarioResult(scenario.name, scenario.title, INCONCLUSIVE, system_dir=str(base))
    # The simulated coordinators sign in to the console like people: accounts for the
    # centres the simulated hospitals refer to, in the console's users file.
    staff = prepare_staff(base / "staff", options.coordinators)
    # The console reaches each service through a front door that finds a live instance,
    # as a load balancer would: killing the first of two instances must not cut it off.
    door = FrontDoor(list(CONSOLE_CALLS))
    system = LocalSystem(
        base,
        infrastructure_kind=options.infra,
        name_prefix=f"chaos_{token}_{index}_",
        extra_env={**staff.env, **door.console_env()},
    )
    instances = LiveInstances(system)
    code_before = code_state()
    result.code = hashlib.sha256(repr(sorted(code_before.items())).encode()).hexdigest()[:12]
    try:
        say(f"[chaos {scenario.name}] starting a fresh system in {base}")
        door.start({service: instances.ports_of(service) for service in CONSOLE_CALLS})
        info = system.start()
        result.infrastructure = info.infrastructure
        result.timings["system_start_s"] = round(time.monotonic() - started, 1)
        check_loopback(info)
        if scenario.needs_embedded and info.infrastructure != "embedded":
            result.notes.append(
                f"needs the embedded broker and PostgreSQL (SIGSTOP, restart); this system runs "
                f"on {info.infrastructure!r} infrastructure: not run"
            )
            return result
        if abort.is_set():
            result.notes.append("aborted before the load started")
            return result
        asyncio.run(
            _run(scenario, token, index, options, system, info, result, abort, staff, instances)
        )
    except Exception as exc:
        result.verdict = INCONCLUSIVE
        result.problems.append(
            Problem(HARNESS, "harness", f"{type(exc).__name__}: {exc}").to_dict()
        )
        say(f"[chaos {scenario.name}] harness error: {type(exc).__name__}: {exc}")
    finally:
        stopping = time.monotonic()
        with contextlib.suppress(Exception):
            system.stop()
        door.stop()
        result.timings["system_stop_s"] = round(time.monotonic() - stopping, 1)
        if result.verdict == PASS and not options.keep_data:
            # A passing scenario's database files (~300 MB) prove nothing more; its logs stay.
            for data_dir in base.glob("infra/*/pgdata"):
                shutil.rmtree(data_dir, ignore_errors=True)
        logs = base / "logs"
        result.log_warnings = log_warnings(logs)
        needles = _needles(result.problems)
        if needles:
            result.log_evidence = log_lines(logs, needles)
        result.duration_s = round(time.monotonic() - started, 1)
        changed = code_changes(code_before, code_state())
        if changed:
            result.notes.append(
                "the product's code changed during this scenario, so processes restarted by "
                "the faults may have run other code than the first ones: " + ", ".join(changed)
            )
    return result


def _needles(problems: list[dict[str, Any]], limit: int = 12) -> list[str]:
    found: list[str] = []
    for problem in problems:
        if problem["kind"] not in PRODUCT_KINDS:
            continue
        evidence = problem.get("evidence") or {}
        for value in (evidence.get("case_id"), problem.get("referral_id")):
            if isinstance(value, str) and value and value not in found:
                found.append(value)
        if len(found) >= limit:
            break
    return found


async def _run(
    scenario: Scenario,
    token: str,
    index: int,
    options: Options,
    system: LocalSystem,
    info: SystemInfo,
    result: ScenarioResult,
    abort: threading.Event,
    staff: StaffSetup,
    instances: LiveInstances,
) -> None:
    name = scenario.name
    rng = random.Random(f"{options.seed}:{name}")
    window_s = window_for(scenario, options)
    timeout_s = min(
        load_timeout(window_s, options),
        max(60.0, options.deadline - time.monotonic() - options.quiet_timeout_s - 60.0),
    )
    plan: list[Step] = scenario.plan(
        rng, PlanContext(window_s=window_s, quick=options.quick, target=options.target)
    )
    result.plan = [step.to_dict() for step in plan]
    faults = Faults(system)
    instances.faults = faults
    load = Load(
        info,
        referrals=options.referrals,
        hospitals=options.hospitals,
        window_s=window_s,
        seed=options.seed + index,
        run_id=f"c{token}-{index}",
        timeout_s=timeout_s,
        accounts=staff.accounts,
    )
    stop_load = asyncio.Event()
    stop_faults = asyncio.Event()

    async def watch_abort() -> None:
        # `abort` is a threading.Event set from a signal handler: poll it.
        while not await asyncio.to_thread(abort.wait, 0.5):
            pass
        say(f"[chaos {name}] aborting")
        stop_load.set()
        stop_faults.set()

    watcher = asyncio.create_task(watch_abort())
    try:
        await _scenario_body(
            scenario,
            options,
            info,
            result,
            abort,
            plan,
            faults,
            load,
            window_s,
            timeout_s,
            stop_load,
            stop_faults,
        )
    finally:
        watcher.cancel()
        with contextlib.suppress(Exception):
            await faults.restore()
        faults.stop_extra()


async def _scenario_body(
    scenario: Scenario,
    options: Options,
    info: SystemInfo,
    result: ScenarioResult,
    abort: threading.Event,
    plan: list[Step],
    faults: Faults,
    load: Load,
    window_s: float,
    timeout_s: float,
    stop_load: asyncio.Event,
    stop_faults: asyncio.Event,
) -> None:
    name = scenario.name
    errors: list[str] = []
    say(
        f"[chaos {name}] {scenario.title}: {options.referrals} referrals over {window_s:.0f}s "
        f"from {len(options.hospitals)} hospitals, {len(plan)} faults planned, load bound "
        f"{timeout_s:.0f}s"
    )
    for step in plan:
        say(
            f"[chaos {name}]   plan: {step.action} {step.target} at {step.at_s:.0f}s"
            + (f" for {step.duration_s:.1f}s" if step.duration_s else "")
        )
    if scenario.setup is not None:
        await scenario.setup(faults)
    faults.started = time.monotonic()
    samples: list[tuple[float, int]] = []
    progress = asyncio.create_task(_progress(name, load, faults, len(plan), options, samples))
    load.start_staff()
    injector = asyncio.create_task(execute(plan, faults, stop_faults))
    stall_s = 30.0 if options.quick else 60.0
    stalled = asyncio.create_task(_watch_stall(info, load, injector, stop_load, stall_s))
    try:
        await load.run_hospitals(stop_load)
        stalled.cancel()
        if stalled.done() and not stalled.cancelled() and stalled.result():
            result.notes.append(
                f"the load was ended early: after the faults nothing moved for {stall_s:.0f}s "
                "(no submission, no terminal status, no database change) with referrals unfinished"
            )
        result.timings["load_s"] = round(faults.elapsed, 1)
        # The plan fits in the window, so it is normally over; bound the wait anyway.
        last = max((s.at_s + s.duration_s for s in plan), default=0.0)
        try:
            errors += await asyncio.wait_for(
                asyncio.shield(injector), max(5.0, last - faults.elapsed + 120.0)
            )
        except TimeoutError:
            stop_faults.set()
            errors.append("fault injection did not finish in time")
            with contextlib.suppress(TimeoutError):
                errors += await asyncio.wait_for(injector, 30)
    finally:
        stop_faults.set()
        undone = await faults.restore()
        if undone:
            result.notes.append("restored after the run: " + ", ".join(undone))
    try:
        restarted = await ensure_running(faults)
        if restarted:
            errors.append(f"had to restart {', '.join(restarted)} after the faults")
    except Exception as exc:
        errors.append(f"could not bring every service back: {exc}")
    if load.status.terminal < load.status.planned and not abort.is_set():
        say(f"[chaos {name}] load ended with {load.status.terminal}/{load.status.planned} terminal")
    say(
        f"[chaos {name}] waiting (at most {options.quiet_timeout_s:.0f}s) for the system to go quiet"
    )
    began = time.monotonic()
    quiet = await wait_quiet(info, timeout_s=options.quiet_timeout_s)
    result.timings["quiet_s"] = round(time.monotonic() - began, 1)
    await load.stop_staff()
    progress.cancel()
    faults.stop_extra()
    say(f"[chaos {name}] reading the hospitals' topics and the databases")
    updates, unreadable = await read_updates(info.kafka_bootstrap, options.hospitals)
    database = await read_databases(info)
    if unreadable:
        result.notes.append(f"{unreadable} records on the updates topics were not updates")
    errors += load.errors
    if abort.is_set():
        errors.append("aborted")
    hospitals_timed_out = [h.hospital_id for h in load.results if h.timed_out]
    if hospitals_timed_out:
        result.notes.append(
            f"the load bound ({timeout_s:.0f}s) passed for {', '.join(hospitals_timed_out)}"
        )
    verification: Verification = verify(
        load.sent(),
        updates,
        database,
        HarnessFacts(
            planned=options.referrals,
            faults_planned=len(plan),
            faults_injected=faults.injected,
            quiescent=quiet,
            cut_short=bool(hospitals_timed_out) and _still_finishing(samples),
            errors=errors,
        ),
    )
    result.verdict = verification.verdict
    result.counts = verification.counts
    result.counts["updates_on_topics"] = len(updates)
    result.problems = [p.to_dict() for p in verification.problems]
    result.notes += verification.notes
    result.faults = [e.to_dict() for e in faults.events]
    result.load = load.status.summary()
    counts = verification.counts
    say(
        f"[chaos {name}] verdict {verification.verdict}: sent {counts['sent']}, terminal "
        f"{counts['terminal']} {counts['terminal_by_status']}, lost {counts['lost']}, "
        f"duplicated {counts['duplicated']}, out of order {counts['out_of_order']}, stuck "
        f"{counts['stuck']}, faults {faults.injected}/{len(plan)}"
    )


async def _watch_stall(
    info: SystemInfo,
    load: Load,
    injector: asyncio.Task[list[str]],
    stop_load: asyncio.Event,
    stall_s: float,
) -> bool:
    """End the load early once the faults are over and nothing has moved for `stall_s`:
    the hospitals would otherwise wait out their whole bound for referrals that will never
    finish. Returns whether it did."""
    last: object = None
    since = time.monotonic()
    while not stop_load.is_set():
        await asyncio.sleep(5.0)
        try:
            state = (load.status.sent, load.status.terminal, await fingerprint(info))
        except DB_ERRORS:
            continue  # a database fault in progress is not a stall
        now = time.monotonic()
        if state != last or not injector.done():
            last, since = state, now
        elif now - since >= stall_s:
            say(f"[chaos] nothing moved for {stall_s:.0f}s after the faults: ending the load")
            stop_load.set()
            return True
    return False


def _still_finishing(samples: list[tuple[float, int]], over_s: float = 30.0) -> bool:
    """Whether the terminal count grew in the last `over_s` seconds of the load."""
    if not samples:
        return False
    end, last = samples[-1]
    earlier = [terminal for at, terminal in samples if at <= end - over_s]
    return bool(earlier) and last > earlier[-1]


async def _progress(
    name: str,
    load: Load,
    faults: Faults,
    planned_faults: int,
    options: Options,
    samples: list[tuple[float, int]],
) -> None:
    while True:
        await asyncio.sleep(min(options.progress_interval_s, 5.0))
        status = load.status
        if not load.results:  # still loading: (time, terminal) for _still_finishing
            samples.append((time.monotonic(), status.terminal))
        last = faults.events[-1] if faults.events else None
        staff = status.staff
        say(
            f"[chaos {name}] {faults.elapsed:5.0f}s sent {status.sent}/{options.referrals} "
            f"terminal {status.terminal} updates {status.updates} faults "
            f"{faults.injected}/{planned_faults}"
            + (f" (last: {last.action} {last.target} at {last.at_s:.0f}s)" if last else "")
            + f" staff done {status.staff_done}"
            + (f" errors {staff.errors}" if staff and staff.errors else "")
            + (f" restarts {status.staff_restarts}" if status.staff_restarts else "")
        )
