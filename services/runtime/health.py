"""Liveness, readiness and metrics over HTTP on the service's health port.

Liveness says the process still works its loops (a restart would help if not);
readiness says it can do its job now: broker and database both answer.
Services may add their own routes (the coordinators' API) to the same app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool]]


def health_app(*, service: str, live: Callable[[], bool], checks: dict[str, Check]) -> FastAPI:
    app = FastAPI(title=f"carelink {service}", docs_url=None, redoc_url=None)

    @app.get("/health/live")
    async def liveness(response: Response) -> dict[str, object]:
        ok = live()
        response.status_code = 200 if ok else 503
        return {"service": service, "live": ok}

    @app.get("/health/ready")
    async def readiness(response: Response) -> dict[str, object]:
        results = {name: await check() for name, check in checks.items()}
        ok = all(results.values())
        response.status_code = 200 if ok else 503
        return {"service": service, "ready": ok, "checks": results}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
