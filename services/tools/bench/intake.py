"""Intake as a hospital sees it: submissions in, the `received` update back.

Maximum rate: every submission sent at once by a batched producer; the rate is
referrals per second from the first send to the last `received` update seen on
the hospital's updates topic. Latency: a second hospital's submissions paced at
half that rate, each timed from its send to its `received` update. Both read
the updates topic with assigned partitions (no consumer group).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from contracts.topics import updates
from services.tools.bench.progress import Ticker, say
from services.tools.bench.report import percentiles
from services.tools.bench.traffic import (
    Referrals,
    UpdateWatcher,
    make_producer,
    quiesce,
    rate_between,
    send_all,
    send_paced,
    steady_rate,
)

RECEIVED = "received"
WARM_UP = 200


async def run_intake(
    *,
    label: str,
    bootstrap: str,
    databases: dict[str, str],
    referrals: Referrals,
    max_hospital: str,
    latency_hospital: str,
    count: int,
    latency_seconds: float,
    timeout: float,
    mark: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """`mark(name)` is told when the maximum-rate and the latency part start (and when
    the system is only finishing a backlog), for per-part CPU and memory figures."""
    result: dict[str, Any] = {}
    phase = f"intake {label}"
    say(phase, f"preparing {count} submissions for {max_hospital}")
    warm = referrals.make(max_hospital, WARM_UP)
    records = referrals.make(max_hospital, count)
    ids = {r.key.decode() for r in (*warm, *records)}
    watcher = UpdateWatcher(bootstrap, updates(max_hospital), ids)
    producer = make_producer(bootstrap)
    await watcher.start()
    await producer.start()
    try:
        # A few referrals first, so start-up costs (connections, first-call imports,
        # pydantic's lazy schema work) are not counted as throughput.
        await send_all(producer, warm)
        await watcher.wait_for(RECEIVED, len(warm), timeout=min(timeout, 120))
        await quiesce(databases)

        ticker = Ticker(phase)
        mark(f"{phase}: maximum rate")
        say(phase, f"maximum rate: sending {count} submissions at once")
        started = time.perf_counter()
        sent_at = await send_all(producer, records, ticker)
        result["send_rate"] = count / (sent_at - started)
        await watcher.wait_for(RECEIVED, len(ids), timeout=timeout, ticker=ticker, started=started)
        arrivals = [watcher.seen(RECEIVED)[r.key.decode()] for r in records]
        result.update(
            referrals=count,
            rate=rate_between(arrivals, started),
            steady_rate=steady_rate(arrivals),
            seconds=max(arrivals) - started,
        )
        say(
            phase,
            f"{count} received at {result['rate']:,.0f}/s "
            f"(steady {result['steady_rate'] or 0:,.0f}/s; producer {result['send_rate']:,.0f}/s)",
        )
    finally:
        await producer.stop()
        await watcher.stop()

    mark(f"{phase}: backlog")
    waited = await quiesce(databases)
    say(phase, f"backlog done after {waited:.1f}s more")
    result["backlog_after_s"] = waited
    mark(f"{phase}: latency")
    result.update(
        await measure_latency(
            phase=phase,
            bootstrap=bootstrap,
            referrals=referrals,
            hospital=latency_hospital,
            rate=result["rate"] / 2,
            count=int(min(count, max(300, result["rate"] / 2 * latency_seconds))),
            timeout=timeout,
        )
    )
    mark(f"{phase}: backlog")
    await quiesce(databases)
    return result


async def measure_latency(
    *,
    phase: str,
    bootstrap: str,
    referrals: Referrals,
    hospital: str,
    rate: float,
    count: int,
    timeout: float,
) -> dict[str, Any]:
    records = referrals.make(hospital, count)
    ids = {r.key.decode() for r in records}
    watcher = UpdateWatcher(bootstrap, updates(hospital), ids)
    producer = make_producer(bootstrap)
    await watcher.start()
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        say(phase, f"latency: {count} submissions paced at {rate:,.0f}/s")
        ticker = Ticker(phase)
        achieved = await send_paced(producer, records, rate, sent_at, ticker)
        await watcher.wait_for(RECEIVED, count, timeout=timeout, ticker=ticker)
    finally:
        await producer.stop()
        await watcher.stop()
    seen = watcher.seen(RECEIVED)
    latencies = [(seen[i] - sent_at[i]) * 1000 for i in ids if i in seen and i in sent_at]
    triaged = watcher.seen("triaged")
    to_triaged = [(triaged[i] - sent_at[i]) * 1000 for i in ids if i in triaged and i in sent_at]
    pct = percentiles(latencies)
    say(
        phase,
        f"latency p50 {pct['p50']:.1f} ms, p95 {pct['p95']:.1f} ms, p99 {pct['p99']:.1f} ms "
        f"at {achieved:,.0f}/s",
    )
    return {
        "latency_ms": pct,
        "latency_to_triaged_ms": percentiles(to_triaged),
        "latency_referrals": count,
        "latency_target_rate": rate,
        "latency_achieved_rate": achieved,
    }
