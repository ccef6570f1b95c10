"""The console's calls to the services' HTTP APIs (httpx): referral and
scheduling for tasks and case facts, intake for personal details, cards and
search, outcome for the updates the hospitals were sent.

Every call carries the console's credential and says for whom it is made
(services.lib.runtime.callers): the signed-in coordinator's username, centre
and role. A service's `{error, message}` answer is passed on as it is.

Reads (GET) are tried again after a timeout, a lost connection or a 502/503/504,
a couple of times with a short pause: they change nothing (a retried read of
personal details may leave two audit rows, which over-records and never hides
a view). Actions (POST) are sent once: an action that timed out may have been
done, and sending it again blindly could do it twice. When a service cannot
answer, the console answers 503 naming it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from services.console.errors import UNAVAILABLE, ConsoleError
from services.console.metrics import CALL_SECONDS, CALLS, call_outcome
from services.lib.runtime.callers import actor_headers
from services.lib.runtime.logging import get_logger

log = get_logger(__name__)
_RETRY_STATUSES = frozenset({502, 503, 504})
_RETRY_PAUSE_S = 0.2
# A 2xx body's parser, e.g. a model's `model_validate_json`: a page of the queue is
# parsed and validated in one pass by pydantic-core instead of json.loads and a
# model per row (issue 12).
Parse = Callable[[bytes], Any]


@dataclass(frozen=True)
class OnBehalfOf:
    """The coordinator a call is made for."""

    username: str
    centre_id: str
    role: str


class ServiceClient:
    def __init__(
        self,
        name: str,
        base_url: str,
        token: str,
        *,
        timeout_s: float,
        read_retries: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self._token = token
        self._retries = read_retries
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            # Connecting to a service that is down fails fast; an answer may take longer.
            timeout=httpx.Timeout(timeout_s, connect=min(2.0, timeout_s)),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def _headers(self, who: OnBehalfOf) -> dict[str, str]:
        return actor_headers(self._token, who.username, who.centre_id, who.role)

    async def get(
        self,
        path: str,
        who: OnBehalfOf,
        params: dict[str, Any] | None = None,
        *,
        parse: Parse | None = None,
    ) -> Any:
        """A read: tried again on a timeout, a lost connection or a 502/503/504.
        `parse` turns a 2xx body into what the caller wants (default: json.loads)."""
        return await self._read("GET", path, who, parse, params=params)

    async def query(
        self, path: str, who: OnBehalfOf, body: dict[str, Any], *, parse: Parse | None = None
    ) -> Any:
        """A read whose question goes in a POST body (a search by name and birth date,
        a page's case ids: never in a URL); retried like a GET, since it changes
        nothing (a retried search may leave two audit rows: over-recorded, never hidden)."""
        return await self._read("POST", path, who, parse, json=body)

    async def _read(
        self, method: str, path: str, who: OnBehalfOf, parse: Parse | None, **options: Any
    ) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._send(method, path, headers=self._headers(who), **options)
            except httpx.TransportError as exc:
                if attempt < self._retries:
                    attempt += 1
                    await asyncio.sleep(_RETRY_PAUSE_S * attempt)
                    continue
                raise self._unavailable(
                    exc, "is not available right now; try again in a moment"
                ) from None
            if response.status_code in _RETRY_STATUSES and attempt < self._retries:
                attempt += 1
                await asyncio.sleep(_RETRY_PAUSE_S * attempt)
                continue
            return self._answer(response, parse)

    async def post(self, path: str, who: OnBehalfOf, body: dict[str, Any] | None = None) -> Any:
        """An action: sent once, never again blindly."""
        try:
            response = await self._send("POST", path, json=body, headers=self._headers(who))
        except httpx.ConnectError as exc:
            # No connection, so the request never left: nothing was done.
            raise self._unavailable(exc, "is not available right now: nothing was done") from None
        except httpx.TransportError as exc:
            raise self._unavailable(
                exc,
                "did not answer in time: the action may or may not have been done; "
                "look at the task again before repeating it",
            ) from None
        return self._answer(response)

    async def _send(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One call, counted and timed under the service's name (never the path)."""
        started = time.perf_counter()
        status: int | None = None
        try:
            response = await self._http.request(method, path, **options)
            status = response.status_code
            return response
        finally:
            CALLS.labels(self.name, call_outcome(status)).inc()
            CALL_SECONDS.labels(self.name).observe(time.perf_counter() - started)

    async def ready(self, timeout_s: float = 3.0) -> bool:
        """The service's own readiness (/health/ready: its broker and database answer)."""
        try:
            response = await self._http.get("/health/ready", timeout=timeout_s)
        except httpx.TransportError:
            return False
        return response.status_code == 200

    def _answer(self, response: httpx.Response, parse: Parse | None = None) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            return parse(response.content) if parse is not None else response.json()
        if status == 401:
            # The coordinator is signed in; the console's own credential is what failed.
            log.error("a service refused the console's API token", service=self.name)
            raise ConsoleError(
                503,
                UNAVAILABLE,
                f"{self.name} refused the console's credential: an operator must set "
                "CARELINK_CONSOLE_API_TOKEN and the service's CARELINK_API_CALLERS",
            )
        if status >= 500:
            log.warning("a service could not answer", service=self.name, status=status)
            raise ConsoleError(
                503, UNAVAILABLE, f"{self.name} could not answer (HTTP {status}); try again"
            )
        try:
            body = response.json()
            code, message = str(body["error"]), str(body["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "error", f"{self.name} answered HTTP {status}"
        raise ConsoleError(status, code, message)

    def _unavailable(self, exc: Exception, what: str) -> ConsoleError:
        log.warning("a service did not answer", service=self.name, error=type(exc).__name__)
        return ConsoleError(503, UNAVAILABLE, f"{self.name} {what}")


@dataclass(frozen=True)
class Services:
    intake: ServiceClient
    referral: ServiceClient
    scheduling: ServiceClient
    # What the hospitals were told (issue 10: the case page's timeline and report).
    outcome: ServiceClient

    def owner(self, service: str) -> ServiceClient:
        """The service that owns a task."""
        return self.referral if service == "referral" else self.scheduling

    def all(self) -> tuple[ServiceClient, ...]:
        return (self.intake, self.referral, self.scheduling, self.outcome)

    async def aclose(self) -> None:
        for client in self.all():
            await client.aclose()


async def gather_all(*calls: Any) -> list[Any]:
    """Run reads together; if any service is unavailable, one 503 naming every one
    that is (nothing half-shown); any other error as it came."""
    answers = await asyncio.gather(*calls, return_exceptions=True)
    down = [a for a in answers if isinstance(a, ConsoleError) and a.code == UNAVAILABLE]
    if len(down) > 1:
        raise ConsoleError(503, UNAVAILABLE, "; ".join(d.message for d in down))
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return list(answers)
