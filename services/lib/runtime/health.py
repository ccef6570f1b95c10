"""Liveness, readiness and metrics over HTTP on the service's health port.

Liveness says the process still works its loops (a restart would help if not);
readiness says it can do its job now: broker and database both answer.
Services may add their own routes (the coordinators' API) to the same app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool]]

# Below an orchestrator's usual probe timeout: a hung dependency answers "not ready",
# never a probe that hangs.
CHECK_TIMEOUT_S = 3.0


async def _run_check(check: Check, timeout_s: float) -> bool:
    """A check that raises or does not answer in time counts as failed (503, not 500)."""
    try:
        return bool(await asyncio.wait_for(check(), timeout=timeout_s))
    except Exception:
        return False


def health_app(
    *,
    service: str,
    live: Callable[[], bool],
    checks: dict[str, Check],
    check_timeout_s: float = CHECK_TIMEOUT_S,
) -> FastAPI:
    app = FastAPI(title=f"carelink {service}", docs_url=None, redoc_url=None)

    @app.get("/health/live")
    async def liveness(response: Response) -> dict[str, object]:
        ok = live()
        response.status_code = 200 if ok else 503
        return {"service": service, "live": ok}

    @app.get("/health/ready")
    async def readiness(response: Response) -> dict[str, object]:
        # Concurrently: the probe takes as long as the slowest check, not their sum.
        answers = await asyncio.gather(
            *(_run_check(check, check_timeout_s) for check in checks.values())
        )
        results = dict(zip(checks, answers, strict=True))
        ok = all(results.values())
        response.status_code = 200 if ok else 503
        return {"service": service, "ready": ok, "checks": results}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
