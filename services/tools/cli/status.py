"""One line per service from its readiness endpoint (`/health/ready`)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from services.tools.cli.connect import System
from services.tools.stack.deployables import SERVICES


def readiness(service: str, url: str | None, *, timeout: float) -> dict[str, Any]:
    row: dict[str, Any] = {"service": service, "ready": False, "checks": {}, "url": url}
    if not url:
        row["error"] = f"no health URL (set CARELINK_{service.upper()}_HEALTH_URL)"
        return row
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503 still carries the readiness JSON
        body = exc.read()
    except OSError as exc:
        row["error"] = f"unreachable: {exc}"
        return row
    try:
        data = json.loads(body)
    except ValueError:
        row["error"] = "not a readiness response"
        return row
    row["ready"] = bool(data.get("ready"))
    row["checks"] = {str(k): bool(v) for k, v in dict(data.get("checks") or {}).items()}
    return row


async def statuses(
    system: System, *, services: Sequence[str] = SERVICES, timeout: float = 5.0
) -> list[dict[str, Any]]:
    names = [*services, *(s for s in system.health if s not in services)]
    return list(
        await asyncio.gather(
            *(asyncio.to_thread(readiness, s, system.health.get(s), timeout=timeout) for s in names)
        )
    )


def status_line(row: dict[str, Any]) -> list[Any]:
    checks = " ".join(f"{k}={'ok' if v else 'FAIL'}" for k, v in row["checks"].items())
    state = "ready" if row["ready"] else "NOT READY"
    return [row["service"], state, row.get("error") or checks, row["url"]]
