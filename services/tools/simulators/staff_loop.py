"""Simulated coordinators at work: they watch every Care SOS centre's queue (referral's
and scheduling's tasks), claim what is live and complete it after a plausible delay,
through the same use cases the coordinators' interface calls.

Decisions come from the referral's script when the hospital simulator runs in the
same process and shares its `Board`; otherwise (or for referrals without a script)
the plain path: eligible, visits done, the default care plan.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from services.lib.policy import load_registry
from services.lib.tasks import operations as tasks
from services.referral.usecases import CARE_PLAN, REVIEW
from services.scheduling.domain import PRE_DISCHARGE
from services.tools.simulators.scenario import Board, Decisions
from services.tools.simulators.staff import Staff

ACTOR_PREFIX = "sim-coordinator"
DEFAULT_DELAY = (0.2, 2.0)
FINDINGS = ["home-safety-checked"]

StaffProgress = Callable[["StaffStats"], None]


@dataclass
class StaffStats:
    started: float = field(default_factory=time.monotonic)
    # Work done, e.g. "review:eligible", "care-plan:plan", "pre-discharge-visit:contact-failed".
    done: Counter[str] = field(default_factory=Counter)
    # Tasks that changed under the coordinator (cancelled, taken by someone else): normal.
    skipped: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    last_error: str | None = None
    working: int = 0
    polls: int = 0

    @property
    def tasks_done(self) -> int:
        return sum(n for key, n in self.done.items() if not key.endswith(":contact-failed"))

    def summary(self) -> dict[str, object]:
        return {
            "done": dict(self.done),
            "skipped": dict(self.skipped),
            "errors": self.errors,
            "last_error": self.last_error,
            "working": self.working,
            "elapsed_s": round(time.monotonic() - self.started, 1),
        }


@dataclass(frozen=True)
class _Ref:
    hospital_id: str
    referral_id: str


class Coordinators:
    def __init__(
        self,
        staff: Staff,
        *,
        centres: list[str],
        board: Board | None,
        only_scripted: bool,
        delay: tuple[float, float],
        coordinators: int,
        max_contact_attempts: int,
        rng: random.Random,
    ) -> None:
        self.staff = staff
        self.centres = centres
        self.board = board
        self.only_scripted = only_scripted
        self.delay = delay
        # Unique per run: a task claimed by another simulator process is not ours.
        run = uuid.uuid4().hex[:6]
        self.actors = [f"{ACTOR_PREFIX}-{run}-{i + 1}" for i in range(max(1, coordinators))]
        self.max_attempts = max_contact_attempts
        self.rng = rng
        self.stats = StaffStats()
        self._free = list(reversed(self.actors))
        self._active: dict[int, asyncio.Task[None]] = {}
        # When work on a task last ended: a listing taken before that is stale for it.
        self._ended: dict[int, float] = {}
        self._refs: dict[str, _Ref] = {}
        self._waitlisted: set[str] = set()
        self._reopened: set[str] = set()

    async def pause(self) -> None:
        low, high = self.delay
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))

    # -- finding work -------------------------------------------------------------

    async def _live_tasks(self, service: str) -> list[tuple[tasks.Task, _Ref | None]]:
        now = datetime.now(UTC)
        found: list[tuple[tasks.Task, _Ref | None]] = []
        async with self.staff.pools[service].acquire() as conn:
            for centre in self.centres:
                for task in await tasks.queue(conn, centre, now=now):
                    found.append((task, await self._ref(conn, task.case_id)))
        return found

    async def _ref(self, conn: asyncpg.Connection, case_id: str) -> _Ref | None:
        ref = self._refs.get(case_id)
        if ref is None:
            row = await conn.fetchrow(
                "SELECT hospital_id, referral_id FROM cases WHERE case_id = $1", case_id
            )
            if row is None:
                return None
            ref = self._refs[case_id] = _Ref(row["hospital_id"], row["referral_id"])
        return ref

    def _decisions(self, task: tasks.Task, ref: _Ref | None) -> Decisions | None:
        """The decisions for this task now, or None to leave it (not ours, or not yet)."""
        script = None
        if ref is not None and self.board is not None:
            script = self.board.script(ref.hospital_id, ref.referral_id)
            if script is not None and not self.board.gate_open(
                ref.hospital_id, ref.referral_id, task.kind
            ):
                return None
        if script is None:
            return None if self.only_scripted else Decisions()
        return script.staff

    async def poll(self) -> None:
        self.stats.polls += 1
        listed_at = time.monotonic()
        live = await self._live_tasks("referral") + await self._live_tasks("scheduling")
        live.sort(key=lambda item: (item[0].priority != "urgent", item[0].due_at, item[0].id))
        now = datetime.now(UTC)
        for task, ref in live:
            if task.id in self._active or self._ended.get(task.id, 0.0) >= listed_at:
                continue
            if task.status == "claimed":
                ours = task.claimed_by in self.actors
                lease_live = task.lease_until is not None and task.lease_until >= now
                if not ours and lease_live:
                    continue  # a person (or another simulator) holds it
            decisions = self._decisions(task, ref)
            if decisions is None:
                continue
            actor = task.claimed_by if task.claimed_by in self.actors else None
            if actor is not None and actor not in self._free:
                continue
            if actor is None:
                if not self._free:
                    break
                actor = self._free[-1]
            self._free.remove(actor)
            self._active[task.id] = asyncio.create_task(self._work(task, decisions, actor))

    # -- doing it -----------------------------------------------------------------

    async def _work(self, task: tasks.Task, decisions: Decisions, actor: str) -> None:
        self.stats.working += 1
        try:
            await self.pause()
            pool = self.staff.pools[_service(task.kind)]
            async with pool.acquire() as conn, conn.transaction():
                task = await tasks.claim(conn, task.id, actor, now=datetime.now(UTC))
            await self.pause()
            outcome = await self._complete(task, decisions, actor)
            self.stats.done[f"{task.kind}:{outcome}"] += 1
        except tasks.TaskError as exc:
            self.stats.skipped[exc.code] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.errors += 1
            # The type and the task only: exception texts may quote values.
            self.stats.last_error = f"{type(exc).__name__} on {task.kind} task {task.id}"
        finally:
            self.stats.working -= 1
            self._active.pop(task.id, None)
            self._free.append(actor)
            self._ended[task.id] = time.monotonic()
            if len(self._ended) > 10_000:
                horizon = time.monotonic() - 60
                self._ended = {k: v for k, v in self._ended.items() if v > horizon}

    async def _complete(self, task: tasks.Task, decisions: Decisions, actor: str) -> str:
        referral, visits = self.staff.referral, self.staff.visits
        if task.kind == REVIEW:
            await referral.complete_review(
                task.id, actor, decision=decisions.review, reason_code=decisions.review_reason
            )
            return decisions.review
        if task.kind == CARE_PLAN:
            if decisions.care_plan == "waitlist" and task.case_id not in self._waitlisted:
                await referral.waitlist(task.id, actor)
                self._waitlisted.add(task.case_id)
                return "waitlisted"
            if decisions.care_plan == "could-not-deliver":
                await referral.could_not_deliver(task.id, actor)
                return "could-not-deliver"
            result = await referral.set_care_plan(
                task.id, actor, lines=list(decisions.plan_lines) if decisions.plan_lines else None
            )
            return str(result["outcome"])
        if (
            task.kind == PRE_DISCHARGE
            and decisions.contact_failures
            and task.case_id not in self._reopened
        ):
            return await self._unreachable(task, decisions, actor)
        await visits.complete_visit(
            task.id, actor, precautions_acknowledged=True, findings=list(FINDINGS)
        )
        return "done"

    async def _unreachable(self, task: tasks.Task, decisions: Decisions, actor: str) -> str:
        """Call until the limit puts the case on hold, then try again later and reopen."""
        visits = self.staff.visits
        for _ in range(min(decisions.contact_failures, self.max_attempts)):
            task = await visits.contact_failed(task.id, actor)
            self.stats.done[f"{task.kind}:contact-failed"] += 1
            if task.status == "suspended":
                break
            await self.pause()
        if task.status != "suspended":
            return "contact-failed"
        await self.pause()
        await visits.reopen(task.id, actor)
        self._reopened.add(task.case_id)
        return "reopened"

    async def drain(self, grace: float = 5.0) -> None:
        """Let the work in hand finish (up to `grace` seconds), then stop it."""
        running = list(self._active.values())
        if running:
            await asyncio.wait(running, timeout=grace)
        for running_task in running:
            running_task.cancel()
        for running_task in running:
            with contextlib.suppress(asyncio.CancelledError):
                await running_task


def _service(kind: str) -> str:
    return "referral" if kind in (REVIEW, CARE_PLAN) else "scheduling"


async def run_staff(
    referral_db: str,
    scheduling_db: str,
    *,
    stop: asyncio.Event,
    board: Board | None = None,
    only_scripted: bool = False,
    delay: tuple[float, float] = DEFAULT_DELAY,
    coordinators: int = 4,
    on_progress: StaffProgress | None = None,
    poll_interval: float | None = None,
    max_contact_attempts: int = 3,
    seed: int | None = None,
    progress_interval: float = 1.0,
) -> StaffStats:
    """Work every centre's live tasks until `stop` is set.

    `delay` is the (min, max) seconds a coordinator takes before claiming and before
    completing a task; (0, 0) works instantly. With a `board`, scripted referrals
    follow their scripts; `only_scripted` leaves every other task alone (for systems
    shared with other users).
    """
    low, high = delay
    if low < 0 or high < low:
        raise ValueError("delay: 0 <= min <= max")
    interval = poll_interval if poll_interval is not None else (0.1 if high == 0 else 0.25)
    centres = [centre.id for centre in load_registry().centres]
    async with Staff(
        referral_db=referral_db,
        scheduling_db=scheduling_db,
        actor=ACTOR_PREFIX,
        max_contact_attempts=max_contact_attempts,
    ) as staff:
        desk = Coordinators(
            staff,
            centres=centres,
            board=board,
            only_scripted=only_scripted,
            delay=delay,
            coordinators=coordinators,
            max_contact_attempts=max_contact_attempts,
            rng=random.Random(seed),
        )
        next_report = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    await desk.poll()
                except (OSError, asyncpg.PostgresError) as exc:
                    desk.stats.errors += 1
                    desk.stats.last_error = f"{type(exc).__name__} while polling"
                if on_progress is not None and time.monotonic() >= next_report:
                    next_report += progress_interval
                    on_progress(desk.stats)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        finally:
            await desk.drain()
        if on_progress is not None:
            on_progress(desk.stats)
        return desk.stats
