"""Liveness, readiness and metrics over HTTP on the service's health port.

Liveness says the process still works its loops (a restart would help if not);
readiness says it can do its job now: broker and database both answer.
Services may add their own routes (the coordinators' API) to the same app.

/metrics runs the readiness checks too and exports them as `carelink_ready`, so an
alert sees a service that is up but not ready without anyone probing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.lib.runtime.logging import get_logger
from services.lib.runtime.metrics import READY

log = get_logger(__name__)

Check = Callable[[], Awaitable[bool]]
# Run before every scrape to refresh gauges read from elsewhere (the outbox figures).
Collector = Callable[[], Awaitable[None]]

# Below an orchestrator's usual probe timeout: a hung dependency answers "not ready",
# never a probe that hangs.
CHECK_TIMEOUT_S = 3.0


async def _run_check(check: Check, timeout_s: float) -> bool:
    """A check that raises or does not answer in time counts as failed (503, not 500)."""
    try:
        return bool(await asyncio.wait_for(check(), timeout=timeout_s))
    except Exception:
        return False


async def _run_collector(collector: Collector, timeout_s: float) -> None:
    """A collector that fails or hangs leaves its gauges as they were: the scrape still
    answers, and readiness (measured alongside) says why."""
    try:
        await asyncio.wait_for(collector(), timeout=timeout_s)
    except Exception as exc:
        log.debug("metrics collector failed", error=type(exc).__name__)


def health_app(
    *,
    service: str,
    live: Callable[[], bool],
    checks: dict[str, Check],
    check_timeout_s: float = CHECK_TIMEOUT_S,
    collectors: Sequence[Collector] = (),
) -> FastAPI:
    app = FastAPI(title=f"carelink {service}", docs_url=None, redoc_url=None)

    async def ready_checks() -> dict[str, bool]:
        # Concurrently: the probe takes as long as the slowest check, not their sum.
        answers = await asyncio.gather(
            *(_run_check(check, check_timeout_s) for check in checks.values())
        )
        results = dict(zip(checks, answers, strict=True))
        for name, ok in results.items():
            READY.labels(service, name).set(1 if ok else 0)
        return results

    @app.get("/health/live")
    async def liveness(response: Response) -> dict[str, object]:
        ok = live()
        response.status_code = 200 if ok else 503
        return {"service": service, "live": ok}

    @app.get("/health/ready")
    async def readiness(response: Response) -> dict[str, object]:
        results = await ready_checks()
        ok = all(results.values())
        response.status_code = 200 if ok else 503
        return {"service": service, "ready": ok, "checks": results}

    @app.get("/metrics")
    async def metrics() -> Response:
        await asyncio.gather(
            ready_checks(), *(_run_collector(c, check_timeout_s) for c in collectors)
        )
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
