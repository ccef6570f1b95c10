"""The whole loop with instant simulated staff: submission to `completed`.

The hospital submits every referral at once; coordinators (services.tools.simulators.staff,
through the same use cases as the coordinators' interface) act the moment the
hospital's updates say a step is theirs, with bounded concurrency:

| update seen | who acts |
|---|---|
| triaged | coordinator reviews: eligible |
| pre-discharge-visit-scheduled | coordinator visits |
| pre-discharge-visit-done | coordinator sets the default care plan |
| services-linked | hospital sends patient.discharged |
| post-discharge-visit-scheduled | coordinator visits; outcome closes the case |
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.topics import updates
from services.lib.runtime.db import create_pool
from services.referral.usecases import Coordinator as ReferralDesk
from services.scheduling.usecases import Coordinator as VisitDesk
from services.tools.bench.progress import Ticker, say
from services.tools.bench.report import percentiles
from services.tools.bench.traffic import (
    PhaseTimeout,
    Referrals,
    UpdateWatcher,
    make_producer,
    quiesce,
    rate_between,
    send_all,
    steady_rate,
)
from services.tools.simulators.staff import Staff

CLOSED = "closed"


class _Desk(Staff):
    """Staff with pools as large as the concurrency (Staff's own stop at 4)."""

    def __init__(self, *, pool_size: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pool_size = pool_size

    async def __aenter__(self) -> _Desk:
        for name, url in self._urls.items():
            self.pools[name] = await create_pool(url, min_size=1, max_size=self._pool_size)
        self.referral = ReferralDesk(self.pools["referral"], self._policies)
        self.visits = VisitDesk(self.pools["scheduling"], max_contact_attempts=self._max_attempts)
        return self


async def run_loop(
    *,
    bootstrap: str,
    databases: dict[str, str],
    referrals: Referrals,
    hospital_id: str,
    count: int,
    concurrency: int,
    timeout: float,
) -> dict[str, Any]:
    phase = "whole loop"
    records = referrals.make(hospital_id, count)
    hospital = referrals.hospital(hospital_id)
    ids = {r.key.decode() for r in records}
    producer = make_producer(bootstrap)
    limit = asyncio.Semaphore(concurrency)
    actions: set[asyncio.Task[None]] = set()
    failures: list[str] = []
    acted: dict[str, int] = {}

    async def act(kind: str, step: Any) -> None:
        async with limit:
            try:
                await step()
                acted[kind] = acted.get(kind, 0) + 1
            except Exception as exc:  # reported, never fatal: the loop counts what completes
                failures.append(f"{kind}: {type(exc).__name__}: {exc}")

    async with _Desk(
        referral_db=databases["referral"],
        scheduling_db=databases["scheduling"],
        actor="bench-coordinator",
        pool_size=max(4, concurrency // 2),
    ) as staff:

        def on_update(data: dict[str, Any], _: float) -> None:
            status = data.get("business_status")
            case_id = str(data.get("case_id"))
            referral_id = str(data.get("referral_id"))
            step: Any = None
            if status == "triaged":
                step = lambda: staff.review(case_id)  # noqa: E731
            elif status == "pre-discharge-visit-scheduled":
                step = lambda: staff.visit(case_id, "pre-discharge-visit")  # noqa: E731
            elif status == "pre-discharge-visit-done":
                step = lambda: staff.plan(case_id)  # noqa: E731
            elif status == "services-linked":
                record = hospital.discharged(referral_id, datetime.now(UTC))

                async def discharge() -> None:
                    future = await producer.send(
                        record.topic, value=record.value, key=record.key, headers=record.headers
                    )
                    await future

                step = discharge
            elif status == "post-discharge-visit-scheduled":
                step = lambda: staff.visit(case_id, "post-discharge-visit")  # noqa: E731
            if step is not None:
                # Act on the first sight only: a redelivered update must not act twice.
                key = (referral_id, str(status))
                if key in handled:
                    return
                handled.add(key)
                task = asyncio.create_task(act(str(status), step))
                actions.add(task)
                task.add_done_callback(actions.discard)

        handled: set[tuple[str, str]] = set()
        watcher = UpdateWatcher(bootstrap, updates(hospital_id), ids, on_update=on_update)
        await watcher.start()
        await producer.start()
        try:
            ticker = Ticker(phase)
            say(phase, f"{count} referrals, staff concurrency {concurrency}")
            case_events_before = await _count_case_events(databases)
            started = time.perf_counter()
            await send_all(producer, records)
            try:
                await watcher.wait_for(
                    CLOSED, count, timeout=timeout, stall=90, ticker=ticker, started=started
                )
            except PhaseTimeout as exc:
                if not watcher.seen(CLOSED):
                    raise
                failures.append(str(exc))
            closed = watcher.seen(CLOSED)
            arrivals = list(closed.values())
            await asyncio.gather(*actions, return_exceptions=True)
        finally:
            await producer.stop()
            await watcher.stop()
    await quiesce(databases)
    case_events = await _count_case_events(databases) - case_events_before
    # Everything is submitted at once: this is how long the burst takes to drain.
    to_completed = [(t - started) * 1000 for t in arrivals]
    rate = rate_between(arrivals, started)
    say(
        phase,
        f"{len(closed)}/{count} completed at {rate:,.1f}/s; "
        f"{watcher.updates / max(1, count):.1f} updates and "
        f"{case_events / max(1, count):.1f} care.cases events per referral",
    )
    for failure in failures[:5]:
        say(phase, f"problem: {failure}")
    return {
        "referrals": count,
        "completed": len(closed),
        "rate": rate,
        "steady_rate": steady_rate(arrivals),
        "seconds": (max(arrivals) - started) if arrivals else None,
        "updates_per_referral": watcher.updates / count,
        "case_events_per_referral": case_events / count,
        "latency_ms": percentiles(to_completed),
        "staff_concurrency": concurrency,
        "staff_actions": acted,
        "failures": len(failures),
        "failure_samples": failures[:10],
    }


async def _count_case_events(databases: dict[str, str]) -> int:
    """care.cases records every service ever put in its outbox (all are published:
    the caller waited for the outboxes to drain)."""
    total = 0
    for url in databases.values():
        conn = await asyncpg.connect(url)
        try:
            total += int(
                await conn.fetchval("SELECT count(*) FROM outbox WHERE topic = 'care.cases'")
            )
        finally:
            await conn.close()
    return total
