"""Simulated coordinators at work: a pool of signed-in coordinators per Care SOS centre
watches that centre's queue in the console, claims what is live and completes it
after a plausible delay, through the console's HTTP API like people
(services.tools.simulators.console_client).

Each centre has one reader of its queue and a pool of coordinators (one account
each, each working one task at a time as its own asyncio task). The reader hands
a listed task to a free coordinator of the pool, so two of ours never reach for
the same task; a person or another process may still take it first, and then the
console's 409 says so and the coordinator moves on. A task one of our accounts
already holds (a run that stopped half-way) goes back to that account.

Decisions come from the referral's script when the hospital simulator runs in the
same process and shares its `Board` (which also tells which referral a case is);
otherwise the plain path: eligible, visits done, the default care plan, every line
delivered in full.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from services.tools.simulators.accounts import Account, by_centre
from services.tools.simulators.console_client import (
    LIVE,
    Conflict,
    ConsoleClient,
    NotFound,
    Task,
    sign_in_all,
)
from services.tools.simulators.scenario import Board, Decisions

DEFAULT_DELAY = (0.2, 2.0)
# A task whose case the hospital in this process has not heard of yet is left this long
# before the plain path is taken (it may be a scripted referral whose update is on its way).
UNKNOWN_CASE_GRACE_S = 10.0

StaffProgress = Callable[["StaffStats"], None]
# The decisions for a task now, or None to leave it (not ours, or not yet).
Decide = Callable[[Task], Decisions | None]


@dataclass
class StaffStats:
    started: float = field(default_factory=time.monotonic)
    # Work done, e.g. "review:eligible", "care-plan:plan", "pre-discharge-visit:contact-failed".
    done: Counter[str] = field(default_factory=Counter)
    # Tasks that changed under the coordinator (409 claimed-by-other, task-closed …;
    # 404 not-found), by the console's code: normal, they move on.
    skipped: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    last_error: str | None = None
    working: int = 0
    polls: int = 0
    coordinators: int = 0

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
            "coordinators": self.coordinators,
            "queue_reads": self.polls,
            "elapsed_s": round(time.monotonic() - self.started, 1),
        }


def plain(_: Task) -> Decisions:
    return Decisions()


def scripted(board: Board, *, only_scripted: bool) -> Decide:
    """Decisions from the board's scripts; tasks of other referrals take the plain path,
    or are left alone with `only_scripted` (systems shared with other users)."""

    def decide(task: Task) -> Decisions | None:
        ref = board.referral_of(task.case_id)
        if ref is None:
            if only_scripted:
                return None
            created = task.created_at or datetime.now(UTC)
            if (datetime.now(UTC) - created).total_seconds() < UNKNOWN_CASE_GRACE_S:
                return None
            return Decisions()
        script = board.script(*ref)
        if script is None:
            return None if only_scripted else Decisions()
        if not board.gate_open(ref[0], ref[1], task.kind):
            return None
        return script.staff

    return decide


@dataclass(eq=False)
class _Centre:
    centre_id: str
    pool: list[ConsoleClient]
    free: list[ConsoleClient] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Listed tasks passed over last time: the next listing reaches that much further.
    passed_over: int = 0
    by_name: dict[str, ConsoleClient] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.free = list(reversed(self.pool))
        self.by_name = {client.username: client for client in self.pool}

    def listing_limit(self, active: int) -> int:
        return min(1000, active + self.passed_over + 4 * len(self.free) + 20)


TaskKey = tuple[str, int]  # (service, id): ids are per service


class Coordinators:
    def __init__(
        self,
        clients: Sequence[ConsoleClient],
        *,
        decide: Decide,
        delay: tuple[float, float],
        rng: random.Random,
        poll_interval: float,
        idle_poll_interval: float,
    ) -> None:
        self.decide = decide
        self.delay = delay
        self.rng = rng
        self.poll_interval = poll_interval
        self.idle_poll_interval = max(poll_interval, idle_poll_interval)
        grouped: dict[str, list[ConsoleClient]] = {}
        for client in clients:
            grouped.setdefault(client.centre_id, []).append(client)
        self.centres = [_Centre(centre, pool) for centre, pool in grouped.items()]
        self.stats = StaffStats(coordinators=len(clients))
        self._active: dict[TaskKey, asyncio.Task[None]] = {}
        # When work on a task last ended: a listing taken before that is stale for it.
        self._ended: dict[TaskKey, float] = {}
        self._waitlisted: set[str] = set()
        self._stopping = False

    async def pause(self) -> None:
        low, high = self.delay
        if high > 0:
            await asyncio.sleep(self.rng.uniform(low, high))

    # -- finding work -------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Read every centre's queue and hand out its tasks until `stop` is set."""
        readers = [asyncio.create_task(self._read(centre)) for centre in self.centres]
        try:
            await stop.wait()
        finally:
            self._stopping = True
            for centre in self.centres:
                centre.wake.set()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _read(self, centre: _Centre) -> None:
        wait = self.poll_interval
        last_read = 0.0
        while not self._stopping:
            since = time.monotonic() - last_read
            if since < self.poll_interval:
                await asyncio.sleep(self.poll_interval - since)
            if centre.free:
                last_read = time.monotonic()
                try:
                    handed = await self.poll(centre)
                except Exception as exc:  # counted; the reader goes on
                    self.stats.errors += 1
                    self.stats.last_error = (
                        f"{type(exc).__name__} reading {centre.centre_id}'s queue"
                    )
                    wait = min(self.idle_poll_interval, max(0.5, wait * 2))
                else:
                    # Busy: look again soon; idle: less and less often.
                    wait = (
                        self.poll_interval if handed else min(self.idle_poll_interval, wait * 1.5)
                    )
            else:
                wait = self.idle_poll_interval  # all busy: a finished task wakes us
            centre.wake.clear()
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(centre.wake.wait(), wait)

    async def poll(self, centre: _Centre) -> int:
        """Read the centre's queue once and hand its tasks to free coordinators."""
        self.stats.polls += 1
        listed_at = time.monotonic()
        active = sum(1 for client in centre.pool if client not in centre.free)
        listing = await centre.pool[0].queue(statuses=LIVE, limit=centre.listing_limit(active))
        return self._hand_out(centre, listing, listed_at)

    def _hand_out(self, centre: _Centre, listing: list[Task], listed_at: float) -> int:
        now = datetime.now(UTC)
        handed = passed_over = 0
        for task in listing:  # urgent first, then by deadline: the console's order
            key = (task.service, task.id)
            if key in self._active or self._ended.get(key, 0.0) >= listed_at:
                passed_over += 1
                continue
            holder = centre.by_name.get(task.claimed_by or "")
            if task.status == "claimed" and holder is None and task.lease_live(now):
                passed_over += 1  # a person (or another process) holds it
                continue
            decisions = self.decide(task)
            if decisions is None:
                passed_over += 1
                continue
            if holder is not None:
                if holder not in centre.free:
                    passed_over += 1
                    continue
                client = holder  # ours already: only that account may go on with it
            elif centre.free:
                client = centre.free[-1]
            else:
                break
            centre.free.remove(client)
            self._active[key] = asyncio.create_task(self._work(centre, task, decisions, client))
            handed += 1
        centre.passed_over = passed_over
        return handed

    # -- doing it -----------------------------------------------------------------

    async def _work(
        self, centre: _Centre, task: Task, decisions: Decisions, client: ConsoleClient
    ) -> None:
        key = (task.service, task.id)
        self.stats.working += 1
        try:
            await self.pause()
            task = await client.claim(task)
            await self.pause()
            outcome = await self._complete(client, task, decisions)
            self.stats.done[f"{task.kind}:{outcome}"] += 1
        except (Conflict, NotFound) as exc:
            self.stats.skipped[exc.code] += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.errors += 1
            # The type and the task only: exception texts may quote values.
            self.stats.last_error = f"{type(exc).__name__} on {task.kind} task {task.id}"
        finally:
            self.stats.working -= 1
            self._active.pop(key, None)
            centre.free.append(client)
            centre.wake.set()
            self._ended[key] = time.monotonic()
            if len(self._ended) > 10_000:
                horizon = time.monotonic() - 60
                self._ended = {k: v for k, v in self._ended.items() if v > horizon}

    async def _complete(self, client: ConsoleClient, task: Task, decisions: Decisions) -> str:
        if task.kind == "review":
            await client.review(task, decisions.review, decisions.review_reason)
            return decisions.review
        if task.kind == "care-plan":
            if decisions.care_plan == "waitlist" and task.case_id not in self._waitlisted:
                await client.waitlist(task)
                self._waitlisted.add(task.case_id)
                return "waitlisted"
            if decisions.care_plan == "could-not-deliver":
                await client.could_not_deliver(task)
                return "could-not-deliver"
            return (await client.care_plan(task, decisions.plan_lines)).outcome
        if task.kind == "delivery":
            done = await client.deliver(task, decisions.delivery)
            return done.outcome if done is not None else "no-open-line"
        if task.kind == "pre-discharge-visit" and decisions.contact_failures > task.attempts:
            return await self._unreachable(client, task, decisions)
        return (await client.visit(task)).outcome

    async def _unreachable(self, client: ConsoleClient, task: Task, decisions: Decisions) -> str:
        """Call without reaching the person, `contact_failures` times in all (the console
        counts them on the task): at the limit the case goes on hold as unreachable and the
        task leaves us; below it, the next call reaches them and the visit is done."""
        for _ in range(task.attempts, decisions.contact_failures):
            done = await client.contact_failed(task)
            self.stats.done[f"{task.kind}:contact-failed"] += 1
            if done.outcome == "unreachable":
                return "unreachable"
            task = done.task
            await self.pause()
        return (await client.visit(task)).outcome

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


async def run_staff(
    console: str,
    accounts: Sequence[Account],
    *,
    stop: asyncio.Event,
    board: Board | None = None,
    only_scripted: bool = False,
    decide: Decide | None = None,
    delay: tuple[float, float] = DEFAULT_DELAY,
    per_centre: int | None = None,
    on_progress: StaffProgress | None = None,
    poll_interval: float | None = None,
    seed: int | None = None,
    progress_interval: float = 1.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> StaffStats:
    """Sign in as `accounts` (at most `per_centre` of each centre) at the console's
    address `console` and work their centres' live tasks until `stop` is set.

    `delay` is the (min, max) seconds a coordinator takes before claiming and before
    completing a task; (0, 0) works instantly. With a `board`, scripted referrals
    follow their scripts; `only_scripted` leaves every other task alone (for systems
    shared with other users). `decide` replaces both with a rule of the caller's.
    """
    low, high = delay
    if low < 0 or high < low:
        raise ValueError("delay: 0 <= min <= max")
    instant = high == 0
    interval = poll_interval if poll_interval is not None else (0.1 if instant else 0.25)
    if decide is None:
        decide = plain if board is None else scripted(board, only_scripted=only_scripted)
    chosen = [a for found in by_centre(accounts, per_centre).values() for a in found]
    if not chosen:
        raise ValueError("no coordinator accounts")
    async with contextlib.AsyncExitStack() as stack:
        clients = [ConsoleClient(console, account, transport=transport) for account in chosen]
        await sign_in_all(stack, clients)
        desk = Coordinators(
            clients,
            decide=decide,
            delay=delay,
            rng=random.Random(seed),
            poll_interval=interval,
            idle_poll_interval=0.5 if instant else 2.0,
        )
        reporter = None
        if on_progress is not None:
            reporter = asyncio.create_task(_report(desk.stats, on_progress, progress_interval))
        try:
            await desk.run(stop)
        finally:
            if reporter is not None:
                reporter.cancel()
            await desk.drain()
        if on_progress is not None:
            on_progress(desk.stats)
        return desk.stats


async def _report(stats: StaffStats, on_progress: StaffProgress, interval: float) -> None:
    while True:
        on_progress(stats)
        await asyncio.sleep(interval)
