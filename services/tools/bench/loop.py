"""The whole loop with instant simulated staff: submission to `completed`.

The hospital submits every referral at once and sends `patient.discharged` the
moment an update says `services-ordered`. The coordinators are a pool of simulated
coordinators (services.tools.simulators.staff_loop), several per centre, each
signed in to the console with its own account and working through its HTTP API
as a person would: read the centre's queue, claim, complete (review eligible,
visits done, the default care plan, every line delivered), with no delay of their own.

The loop's patients live in districts the intake runs never use
(`LOOP_DISTRICTS`), so the loop's centres hold only the loop's tasks: the intake
runs leave thousands of review tasks open elsewhere, which the coordinators never
see. The benchmark reads the services' databases only to count (care.cases
events) and to wait for quiet; it imports no service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.topics import updates
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
from services.tools.simulators.accounts import Account
from services.tools.simulators.staff_loop import StaffStats, run_staff

CLOSED = "closed"
# Served districts (every policy year) of no intake run: the loop's centres see only its work.
LOOP_DISTRICTS = ("Mapo-gu", "Seocho-gu", "Nowon-gu", "Eunpyeong-gu")


async def run_loop(
    *,
    bootstrap: str,
    console: str,
    accounts: Sequence[Account],
    databases: dict[str, str],
    referrals: Referrals,
    hospital_id: str,
    count: int,
    timeout: float,
) -> dict[str, Any]:
    phase = "whole loop"
    records = referrals.make(hospital_id, count, districts=LOOP_DISTRICTS)
    hospital = referrals.hospital(hospital_id)
    ids = {r.key.decode() for r in records}
    producer = make_producer(bootstrap)
    discharges: set[asyncio.Task[None]] = set()
    discharged: set[str] = set()
    failures: list[str] = []

    async def discharge(referral_id: str) -> None:
        record = hospital.discharged(referral_id, datetime.now(UTC))
        try:
            future = await producer.send(
                record.topic, value=record.value, key=record.key, headers=record.headers
            )
            await future
        except Exception as exc:  # reported, never fatal: the loop counts what completes
            failures.append(f"discharge: {type(exc).__name__}: {exc}")

    def on_update(data: dict[str, Any], _: float) -> None:
        referral_id = str(data.get("referral_id"))
        # Act on the first sight only: a redelivered update must not discharge twice.
        if data.get("business_status") == "services-ordered" and referral_id not in discharged:
            discharged.add(referral_id)
            task = asyncio.create_task(discharge(referral_id))
            discharges.add(task)
            task.add_done_callback(discharges.discard)

    watcher = UpdateWatcher(bootstrap, updates(hospital_id), ids, on_update=on_update)
    staff_stop = asyncio.Event()
    staff: asyncio.Task[StaffStats] | None = None
    await watcher.start()
    await producer.start()
    try:
        staff = asyncio.create_task(
            run_staff(console, accounts, stop=staff_stop, delay=(0.0, 0.0), poll_interval=0.05)
        )
        ticker = Ticker(phase)
        say(
            phase,
            f"{count} referrals, {len(accounts)} simulated coordinators over the console's API",
        )
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
        await asyncio.gather(*discharges, return_exceptions=True)
    finally:
        staff_stop.set()
        stats = await _staff_stats(staff)
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
        f"{case_events / max(1, count):.1f} care.cases events per referral; "
        f"staff: {stats.tasks_done} tasks, {sum(stats.skipped.values())} conflicts, "
        f"{stats.errors} errors, {stats.polls} queue reads",
    )
    if stats.last_error:
        failures.append(f"staff: {stats.errors} errors, last: {stats.last_error}")
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
        "staff": "console API (HTTP)",
        "staff_coordinators": len(accounts),
        "staff_actions": {**dict(stats.done), "discharge": len(discharged)},
        "staff_conflicts": dict(stats.skipped),
        "staff_queue_reads": stats.polls,
        "failures": len(failures) + stats.errors,
        "failure_samples": failures[:10],
    }


async def _staff_stats(staff: asyncio.Task[StaffStats] | None) -> StaffStats:
    if staff is None:
        return StaffStats()
    try:
        return await asyncio.wait_for(staff, 30)
    except Exception as exc:  # the coordinators could not sign in, or did not stop
        stats = StaffStats(errors=1, last_error=f"{type(exc).__name__}: {exc}")
        return stats


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
