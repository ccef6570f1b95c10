"""The console's queue under load (issue 12): a centre with `tasks` open tasks, and how
fast `/api/queue` answers a coordinator of it.

Seeding is a tool's job, allowed to write the services' databases directly: open
tasks are COPYed into referral's (reviews) and scheduling's (pre-discharge visits)
`tasks` tables, half each, in one centre, with their cases' non-personal facts
(hospital, expected discharge, priority, deadline); intake gets a case and an
accepted referral for each (a fake submission of a patient in the centre's
district), so every queue row has its card as in real life. Then VACUUM ANALYZE.

The measurement goes through the console's HTTP API like a person (one signed-in
coordinator, keep-alive): the first page in each sort, and pages further on by the
`next` cursor, each request timed from send to the parsed body.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import psutil  # type: ignore[import-untyped]

from services.lib.tasks.operations import LIVE, queue_query
from services.lib.tasks.ordering import SORTS
from services.tools.bench.progress import Ticker, say
from services.tools.bench.report import percentiles
from services.tools.simulators.accounts import Account

QUEUE_DISTRICT = "Gwanak-gu"  # no intake run and no loop refers patients here
# The processes a queue request passes through, whose CPU per request is reported:
# unlike latency, it does not grow with other work on a shared machine.
QUEUE_PROCESSES = ("console", "referral", "scheduling", "intake")
IDLE_S = 10.0
CHUNK = 20_000


async def seed_open_tasks(
    databases: dict[str, str],
    *,
    centre_id: str,
    tasks: int,
    hospitals: Sequence[str],
    submission: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """`tasks` open tasks of `centre_id`, half in referral and half in scheduling, with
    intake's case and accepted referral for each; returns counts and seconds."""
    started = time.monotonic()
    now = datetime.now(UTC)
    ticker = Ticker("queue seed")
    kinds = {"referral": "review", "scheduling": "pre-discharge-visit"}
    case_ids = [f"case-{uuid.uuid4()}" for _ in range(tasks)]
    intake = await asyncpg.connect(databases["intake"])
    owners = {s: await asyncpg.connect(databases[s]) for s in kinds}
    try:
        for start in range(0, tasks, CHUNK):
            chunk = range(start, min(start + CHUNK, tasks))
            await intake.copy_records_to_table(
                "cases",
                columns=["case_id", "person_id", "open", "created_at"],
                records=[(case_ids[i], f"person-{uuid.uuid4()}", True, now) for i in chunk],
            )
            await intake.copy_records_to_table(
                "referrals",
                columns=[
                    "hospital_id",
                    "referral_id",
                    "case_id",
                    "content_hash",
                    "outcome",
                    "submission",
                ],
                records=[
                    (
                        hospitals[i % len(hospitals)],
                        f"ref-{uuid.uuid4()}",
                        case_ids[i],
                        None,
                        "accepted",
                        json.dumps(submission(i)),
                    )
                    for i in chunk
                ],
            )
            for n, (service, kind) in enumerate(kinds.items()):
                await owners[service].copy_records_to_table(
                    "tasks",
                    columns=[
                        "case_id",
                        "kind",
                        "centre_id",
                        "priority",
                        "due_at",
                        "status",
                        "hospital_id",
                        "expected_discharge_date",
                        "created_at",
                    ],
                    records=[
                        (
                            case_ids[i],
                            kind,
                            centre_id,
                            "urgent" if i % 10 == 0 else "routine",
                            # Deadlines and discharges spread over a month either side.
                            now + timedelta(minutes=(i * 37) % 86_400 - 43_200),
                            "open",
                            hospitals[i % len(hospitals)],
                            date.today() + timedelta(days=(i * 7) % 60 - 30),
                            now - timedelta(seconds=tasks - i),
                        )
                        for i in chunk
                        if i % 2 == n
                    ],
                )
            ticker(f"{chunk.stop:,}/{tasks:,} tasks")
        for conn in (intake, *owners.values()):
            await conn.execute("VACUUM ANALYZE")
    finally:
        for conn in (intake, *owners.values()):
            await conn.close()
    seconds = time.monotonic() - started
    say("queue seed", f"{tasks:,} open tasks in {centre_id} in {seconds:.0f}s")
    return {"tasks": tasks, "centre_id": centre_id, "seconds": round(seconds, 1)}


async def queue_plans(database: str, centre_id: str, *, limit: int = 200) -> dict[str, Any]:
    """How PostgreSQL reads a first page of the live queue in every sort (the SQL the
    services run, services.lib.tasks.operations.queue_query): the plan's scan nodes
    with their index, whether any node reads the table sequentially, and the
    executor's time (EXPLAIN ANALYZE), from one task service's database."""
    conn = await asyncpg.connect(database)
    plans: dict[str, Any] = {}
    try:
        for sort in SORTS:
            sql, args = queue_query(
                centre_id,
                now=datetime.now(UTC),
                kinds=None,
                statuses=LIVE,
                overdue_only=False,
                hospital_ids=None,
                sort=sort,
                after=None,
                service="referral",
                limit=limit,
            )
            raw = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args)
            top = (json.loads(raw) if isinstance(raw, str) else raw)[0]
            scans = [
                f"{node['Node Type']}"
                + (f" on {node['Index Name']}" if "Index Name" in node else "")
                for node in _nodes(top["Plan"])
                if "Scan" in node["Node Type"]
            ]
            plans[sort] = {
                "scans": scans,
                "seq_scan": any(s.startswith("Seq Scan") for s in scans),
                "execution_ms": round(top["Execution Time"], 2),
            }
    finally:
        await conn.close()
    say("queue", "plans: " + "; ".join(f"{k}: {', '.join(v['scans'])}" for k, v in plans.items()))
    return plans


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(n for child in plan.get("Plans", []) for n in _nodes(child))]


def _cpu_seconds(pids: Mapping[str, int]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        seconds[name] = times.user + times.system
    return seconds


def _machine_busy(before: Any, after: Any) -> float:
    """The share of the machine's CPU time that was busy between two psutil.cpu_times()."""
    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (
        getattr(after, "iowait", 0.0) - getattr(before, "iowait", 0.0)
    )
    return (total - idle) / total if total > 0 else 0.0


async def time_queue(
    console: str,
    account: Account,
    *,
    pids: Mapping[str, int] | None = None,
    rounds: int = 20,
    pages: int = 10,
    limit: int = 200,
) -> dict[str, Any]:
    """Latencies of GET /api/queue: `rounds` first pages in every sort, then `pages`
    pages deep by the cursor (default sort), `limit` rows each; with `pids`, the CPU
    each of those processes spent per request (less what it spends per second with
    no request, measured over IDLE_S before), and how busy the machine was."""
    latencies: dict[str, list[float]] = {}
    rows_seen = 0
    async with httpx.AsyncClient(base_url=console, timeout=60.0) as http:
        login = await http.post(
            "/api/login", json={"username": account.username, "password": account.password}
        )
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['token']}"}

        async def page(sort: str, after: str | None) -> dict[str, Any]:
            nonlocal rows_seen
            params: dict[str, Any] = {"sort": sort, "limit": limit}
            if after:
                params["after"] = after
            t0 = time.perf_counter()
            response = await http.get("/api/queue", params=params, headers=headers)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            what = f"first page, sort {sort}" if not after else "deeper pages"
            latencies.setdefault(what, []).append((time.perf_counter() - t0) * 1000)
            rows_seen += len(body["tasks"])
            return body

        await page("priority", None)  # warm-up: connections, plans, caches
        latencies.clear()
        # The processes' own background work (consumers polling the broker, relays,
        # watchers) over a quiet spell, so it can be told apart from the requests'.
        idle_before = _cpu_seconds(pids or {})
        idle_started = time.monotonic()
        await asyncio.sleep(IDLE_S if pids else 0)
        idle_s = time.monotonic() - idle_started
        idle_after = _cpu_seconds(pids or {})
        cpu_before, machine_before = _cpu_seconds(pids or {}), psutil.cpu_times()
        timed_started = time.monotonic()
        for _ in range(rounds):
            for sort in SORTS:
                await page(sort, None)
        after: str | None = None
        for _ in range(pages):
            body = await page("priority", after)
            after = body.get("next")
            if not after:
                break
        cpu_after, machine_after = _cpu_seconds(pids or {}), psutil.cpu_times()
        timed_s = time.monotonic() - timed_started
    every = [ms for values in latencies.values() for ms in values]
    overall = percentiles(every)
    # CPU seconds per second each process spends with no request at all.
    background = {
        name: (idle_after[name] - idle_before[name]) / idle_s
        for name in idle_before
        if name in idle_after and idle_s > 0
    }
    cpu_ms = {
        name: round(
            max(0.0, cpu_after[name] - cpu_before[name] - background.get(name, 0.0) * timed_s)
            * 1000
            / len(every),
            1,
        )
        for name in cpu_before
        if name in cpu_after and every
    }
    busy = _machine_busy(machine_before, machine_after)
    say(
        "queue",
        f"/api/queue p95 {overall['p95']:.0f} ms over {len(every)} requests; CPU per request "
        + ", ".join(f"{k} {v:g} ms" for k, v in cpu_ms.items())
        + f"; machine {busy:.0%} busy",
    )
    return {
        "cpu_ms_per_request": cpu_ms,
        "background_cpu_per_s": {k: round(v, 3) for k, v in background.items()},
        "machine_busy": round(busy, 3),
        "requests": len(every),
        "rows_per_page": limit,
        "rows_seen": rows_seen,
        "latency_ms": overall,
        "by_request": {what: percentiles(values) for what, values in latencies.items()},
    }


async def run_queue(
    console: str,
    databases: dict[str, str],
    account: Account,
    *,
    tasks: int,
    hospitals: Sequence[str],
    submission: Callable[[int], dict[str, Any]],
    pids: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    seed = await seed_open_tasks(
        databases,
        centre_id=account.centre_id,
        tasks=tasks,
        hospitals=hospitals,
        submission=submission,
    )
    await asyncio.sleep(1)  # the services' pools see the analysed tables
    plans = await queue_plans(databases["referral"], account.centre_id)
    return {"seed": seed, "plans": plans, **await time_queue(console, account, pids=pids)}
