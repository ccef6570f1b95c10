"""The load a chaos scenario runs under: simulated hospitals submitting scripted
referrals (services.tools.simulators.hospital) and simulated coordinators working the
tasks through the console's HTTP API (services.tools.simulators.staff_loop), sharing
one `Board` so the staff follow each referral's script. Nothing here touches a
service's database or imports a service: the checks afterwards read the databases
(facts.py), the load only uses what hospitals and coordinators use.

One addition makes the coordinators fit for faults, without changing them: they are
supervised, so if their loop dies on an error that escapes it (the console
unreachable when they sign in), it is started again a second later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from services.tools.simulators.accounts import Account
from services.tools.simulators.hospital import HospitalStats, run_hospital
from services.tools.simulators.scenario import Board, Mix
from services.tools.simulators.staff_loop import StaffStats, run_staff
from services.tools.stack.system import SystemInfo

from .verify import SentReferral


@dataclass
class LoadStatus:
    hospitals: dict[str, HospitalStats] = field(default_factory=dict)
    staff: StaffStats | None = None
    staff_restarts: int = 0
    staff_errors: list[str] = field(default_factory=list)

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
        accounts: Sequence[Account],
        mix: Mix | None = None,
    ) -> None:
        self.info = info
        self.hospital_ids = hospitals
        self.counts = split(referrals, len(hospitals))
        self.rate = referrals / window_s if window_s > 0 else 0.0
        self.seed = seed
        self.run_id = run_id
        self.timeout_s = timeout_s
        # The coordinators' console accounts: one worker each, pooled by centre.
        self.accounts = list(accounts)
        self.mix = mix
        self.board = Board()
        self.status = LoadStatus()
        self.results: list[HospitalStats] = []
        self.errors: list[str] = []
        self._staff_stop = asyncio.Event()
        self._staff_task: asyncio.Task[None] | None = None

    def run_ids(self) -> list[str]:
        return [f"{self.run_id}-{i}" for i in range(len(self.hospital_ids))]

    # -- coordinators -------------------------------------------------------------------

    def start_staff(self) -> None:
        self._staff_task = asyncio.create_task(self._supervise_staff())

    async def stop_staff(self) -> None:
        self._staff_stop.set()
        task = self._staff_task
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
                    self.info.console,
                    self.accounts,
                    stop=self._staff_stop,
                    board=self.board,
                    only_scripted=True,
                    delay=(0.0, 0.0),
                    on_progress=progress,
                    seed=self.seed,
                )
            except Exception as exc:  # the loop died: the console was out of reach
                self.status.staff_restarts += 1
                self.status.staff_errors.append(f"{type(exc).__name__}: restarted")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._staff_stop.wait(), 1.0)

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
