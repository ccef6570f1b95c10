"""The load a chaos scenario runs under: simulated hospitals submitting scripted
referrals (services.tools.simulators.hospital) and simulated coordinators working the
tasks (services.tools.simulators.staff_loop), sharing one `Board` so the staff follow
each referral's script.

Two additions make the simulators fit for faults, without changing them:

- the coordinators are supervised: if their loop dies on a database error that
  escapes it (a restarted PostgreSQL, a database closed to connections), it is
  started again a second later;
- a janitor reopens visits left on hold as `unreachable` for longer than a
  coordinator would leave them: the coordinators reopen right after the last
  failed attempt, and if that one transaction failed (database down) nothing
  else would ever bring the task back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.lib.runtime.db import create_pool
from services.lib.tasks.operations import TaskError
from services.scheduling.usecases import Coordinator as VisitDesk
from services.tools.simulators.hospital import HospitalStats, run_hospital
from services.tools.simulators.scenario import Board, Mix
from services.tools.simulators.staff_loop import StaffStats, run_staff
from services.tools.stack.system import SystemInfo

from .verify import SentReferral

JANITOR_ACTOR = "chaos-janitor"
# A visit on hold as unreachable longer than this was forgotten by the coordinators.
FORGOTTEN_AFTER_S = 15.0


@dataclass
class LoadStatus:
    hospitals: dict[str, HospitalStats] = field(default_factory=dict)
    staff: StaffStats | None = None
    staff_restarts: int = 0
    staff_errors: list[str] = field(default_factory=list)
    janitor_reopened: int = 0
    janitor_errors: int = 0

    @property
    def planned(self) -> int:
        return sum(h.planned for h in self.hospitals.values())

    @property
    def sent(self) -> int:
        return sum(h.sent for h in self.hospitals.values())

    @property
    def terminal(self) -> int:
        return sum(h.terminal for h in self.hospitals.values())

    @property
    def updates(self) -> int:
        return sum(h.updates for h in self.hospitals.values())

    @property
    def staff_done(self) -> int:
        return self.staff.tasks_done if self.staff else 0

    def summary(self) -> dict[str, Any]:
        return {
            "hospitals": {h: s.summary() for h, s in self.hospitals.items()},
            "staff": self.staff.summary() if self.staff else None,
            "staff_restarts": self.staff_restarts,
            "staff_errors": self.staff_errors[-10:],
            "janitor_reopened": self.janitor_reopened,
            "janitor_errors": self.janitor_errors,
        }


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Load:
    def __init__(
        self,
        info: SystemInfo,
        *,
        referrals: int,
        hospitals: list[str],
        window_s: float,
        seed: int,
        run_id: str,
        timeout_s: float,
        coordinators: int = 16,
        mix: Mix | None = None,
    ) -> None:
        self.info = info
        self.hospital_ids = hospitals
        self.counts = split(referrals, len(hospitals))
        self.rate = referrals / window_s if window_s > 0 else 0.0
        self.seed = seed
        self.run_id = run_id
        self.timeout_s = timeout_s
        self.coordinators = coordinators
        self.mix = mix
        self.board = Board()
        self.status = LoadStatus()
        self.results: list[HospitalStats] = []
        self.errors: list[str] = []
        self._staff_stop = asyncio.Event()
        self._staff_task: asyncio.Task[None] | None = None
        self._janitor_task: asyncio.Task[None] | None = None

    def run_ids(self) -> list[str]:
        return [f"{self.run_id}-{i}" for i in range(len(self.hospital_ids))]

    # -- coordinators -------------------------------------------------------------------

    def start_staff(self) -> None:
        self._staff_task = asyncio.create_task(self._supervise_staff())
        self._janitor_task = asyncio.create_task(self._janitor())

    async def stop_staff(self) -> None:
        self._staff_stop.set()
        for task in (self._staff_task, self._janitor_task):
            if task is not None:
                try:
                    await asyncio.wait_for(task, 30)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
                except Exception as exc:
                    self.status.staff_errors.append(f"{type(exc).__name__} when stopping")

    async def _supervise_staff(self) -> None:
        def progress(stats: StaffStats) -> None:
            self.status.staff = stats

        while not self._staff_stop.is_set():
            try:
                await run_staff(
                    self.info.databases["referral"],
                    self.info.databases["scheduling"],
                    stop=self._staff_stop,
                    board=self.board,
                    only_scripted=True,
                    delay=(0.0, 0.0),
                    coordinators=self.coordinators,
                    on_progress=progress,
                    seed=self.seed,
                )
            except Exception as exc:  # the loop died: a database fault escaped it
                self.status.staff_restarts += 1
                self.status.staff_errors.append(f"{type(exc).__name__}: restarted")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._staff_stop.wait(), 1.0)

    async def _janitor(self) -> None:
        first_seen: dict[int, float] = {}
        pool: asyncpg.Pool | None = None
        like = [f"sim-{run}-%" for run in self.run_ids()]
        try:
            while not self._staff_stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._staff_stop.wait(), 3.0)
                if self._staff_stop.is_set():
                    break
                try:
                    if pool is None:
                        pool = await create_pool(
                            self.info.databases["scheduling"], min_size=1, max_size=2
                        )
                    await self._janitor_pass(pool, like, first_seen)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    self.status.janitor_errors += 1
                    if pool is not None:
                        pool.terminate()
                        pool = None
        finally:
            if pool is not None:
                pool.terminate()

    async def _janitor_pass(
        self, pool: asyncpg.Pool, like: list[str], first_seen: dict[int, float]
    ) -> None:
        async with pool.acquire() as conn:
            rows = await conn.fetch(
                """SELECT t.id FROM tasks t JOIN cases c USING (case_id)
                   WHERE t.status = 'suspended' AND c.hold_reason = 'unreachable'
                     AND c.referral_id LIKE ANY($1::text[])""",
                like,
            )
        now = time.monotonic()
        current = {row["id"] for row in rows}
        for task_id in list(first_seen):
            if task_id not in current:
                del first_seen[task_id]
        desk = VisitDesk(pool)
        for task_id in current:
            seen = first_seen.setdefault(task_id, now)
            if now - seen < FORGOTTEN_AFTER_S:
                continue
            try:
                await desk.reopen(task_id, JANITOR_ACTOR)
                self.status.janitor_reopened += 1
            except TaskError:
                pass  # a coordinator got there first
            del first_seen[task_id]

    # -- hospitals ----------------------------------------------------------------------

    async def run_hospitals(self, stop: asyncio.Event) -> list[HospitalStats]:
        def progress(stats: HospitalStats) -> None:
            self.status.hospitals[stats.hospital_id] = stats

        runs = [
            run_hospital(
                self.info.kafka_bootstrap,
                hospital_id,
                rate=self.rate * count / max(1, sum(self.counts)),
                count=count,
                mix=self.mix,
                on_progress=progress,
                # Different seeds per hospital: the same seed would invent the same people,
                # whom intake would rightly join into one case across hospitals.
                seed=self.seed * 100 + index,
                run_id=run_id,
                board=self.board,
                stop=stop,
                timeout=self.timeout_s,
            )
            for index, (hospital_id, count, run_id) in enumerate(
                zip(self.hospital_ids, self.counts, self.run_ids(), strict=True)
            )
            if count > 0
        ]
        outcomes = await asyncio.gather(*runs, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, HospitalStats):
                self.status.hospitals[outcome.hospital_id] = outcome
            else:
                # The hospital's statistics so far still come through its progress calls.
                self.errors.append(f"a simulated hospital failed: {outcome!r}")
        self.results = list(self.status.hospitals.values())
        return self.results

    def sent(self) -> list[SentReferral]:
        referrals: list[SentReferral] = []
        for stats in self.results:
            for track in stats.tracks.values():
                referrals.append(
                    SentReferral(
                        hospital_id=stats.hospital_id,
                        referral_id=track.script.referral_id,
                        kind=track.script.kind,
                        expected_status=track.script.expected_status,
                        sent=track.sent_at is not None,
                    )
                )
        return referrals
