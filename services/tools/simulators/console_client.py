"""One coordinator at the console's JSON API (`/api`, docs/openapi.json), over HTTP.

The simulated staff, the benchmark and the chaos load work tasks only through this
client, exactly as a person's browser or script would: sign in, read the queue,
claim, complete with the result the task's kind takes. They import no
deployable's code and hold no connection to a service's database.

Failures, as a caller sees them:

- `Conflict` (409): the task changed under us (someone else claimed it, its lease
  expired, it was cancelled or done) — move on;
- `NotFound` (404): not a task of our centre (or not at all);
- `Unavailable`: the console did not answer usefully (connection refused or cut,
  a timeout, a 5xx) after bounded retries.

Retries are bounded and only where repeating cannot do a thing twice: any request
that never left (connection refused, connect timeout), reads (and claiming, which
a holder may repeat) after any transport error or 5xx, actions after a 503 (the
console promises a 503 leaves nothing half-done). An action whose answer was lost
is not repeated: the caller finds the task again in the queue, as it now is. A
401 on a signed-in session (the console restarted with a new key, the session
expired) signs in again once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx

from services.tools.simulators.accounts import Account

LIVE = ("open", "claimed")
# Coordinators record dates as Seoul's calendar does.
SEOUL = timezone(timedelta(hours=9), "KST")
# What the simulated coordinators find at each visit: codes of the findings vocabulary
# (deploy/config/findings.yaml, listed by GET /api/findings), never free text.
FINDINGS: dict[str, tuple[str, ...]] = {
    "pre-discharge-visit": ("fall-risk", "home-hazard"),
    "post-discharge-visit": ("home-safety-checked", "needs-meal-support"),
}
# The simulated coordinators' free-text note: it stays in scheduling's store.
NOTE = "모의 방문 메모 (simulated visit note)"
# Transport errors raised before the request left this process: safe to repeat.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class ApiError(Exception):
    """The console answered with an error: HTTP status, its stable code, its message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Conflict(ApiError):
    """409: claimed-by-other, lease-expired, not-claimed, task-closed, policy-incomplete."""


class NotFound(ApiError):
    """404: no such task for this coordinator's centre."""


class SignInRefused(ApiError):
    """401 at sign-in: unknown username or wrong password."""


class Unavailable(Exception):
    """The console did not answer usefully, after the retries that were safe."""


@dataclass(frozen=True)
class Task:
    """A task as the console's API shows it (TaskOut)."""

    service: str
    id: int
    kind: str
    case_id: str
    centre_id: str
    priority: str
    due_at: datetime
    status: str
    claimed_by: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    created_at: datetime | None = None
    result: dict[str, Any] | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Task:
        return cls(
            service=str(data["service"]),
            id=int(data["id"]),
            kind=str(data["kind"]),
            case_id=str(data["case_id"]),
            centre_id=str(data["centre_id"]),
            priority=str(data["priority"]),
            due_at=_time(data["due_at"]),
            status=str(data["status"]),
            claimed_by=data.get("claimed_by"),
            lease_until=_time(data["lease_until"]) if data.get("lease_until") else None,
            attempts=int(data.get("attempts") or 0),
            created_at=_time(data["created_at"]) if data.get("created_at") else None,
            result=data.get("result"),
        )

    def lease_live(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until >= now


@dataclass(frozen=True)
class Completed:
    """What completing a task answered (CompleteOut)."""

    task: Task
    outcome: str
    details: dict[str, Any] = field(default_factory=dict)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


class ConsoleClient:
    """A coordinator signed in to the console: one keep-alive connection pool, one
    session token. Use as `async with ConsoleClient(url, account) as me: ...`."""

    def __init__(
        self,
        base_url: str,
        account: Account,
        *,
        timeout: float = 15.0,
        attempts: int = 4,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise ValueError("the console's address is empty (an old system.json?)")
        self.base_url = base_url.rstrip("/")
        self.account = account
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._sign_in_lock = asyncio.Lock()

    @property
    def username(self) -> str:
        return self.account.username

    @property
    def centre_id(self) -> str:
        return self.account.centre_id

    async def __aenter__(self) -> ConsoleClient:
        await self.open()
        try:
            await self.sign_in()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def open(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self.base_url,
                timeout=self._timeout,
                limits=httpx.Limits(
                    max_connections=4, max_keepalive_connections=2, keepalive_expiry=30.0
                ),
                transport=self._transport,
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- the API ------------------------------------------------------------------

    async def sign_in(self) -> dict[str, Any]:
        """POST /api/login: a session token for this account."""
        async with self._sign_in_lock:
            body = await self._call(
                "POST",
                "/api/login",
                json={"username": self.account.username, "password": self.account.password},
                repeatable=True,
                signed=False,
            )
            self._token = str(body["token"])
            user: dict[str, Any] = body.get("user") or {}
            centre = user.get("centre_id")
            if centre and centre != self.account.centre_id:
                raise SignInRefused(
                    401,
                    "wrong-centre",
                    f"{self.account.username} works for {centre}, not {self.account.centre_id}",
                )
            return user

    async def queue(
        self,
        *,
        kinds: Sequence[str] | None = None,
        statuses: Sequence[str] = LIVE,
        limit: int = 200,
    ) -> list[Task]:
        """GET /api/queue: the centre's tasks, urgent first, then by deadline."""
        params: dict[str, Any] = {"limit": max(1, min(limit, 1000))}
        if kinds:
            params["kind"] = ",".join(kinds)
        if statuses:
            params["status"] = ",".join(statuses)
        body = await self._call("GET", "/api/queue", params=params, repeatable=True)
        return [Task.of(item) for item in body["tasks"]]

    async def detail(self, task: Task) -> dict[str, Any]:
        """GET /api/tasks/{service}/{id}: the task, the case, the personal details (audited)."""
        body: dict[str, Any] = await self._call("GET", _path(task), repeatable=True)
        return body

    async def claim(self, task: Task) -> Task:
        """Take the task under a lease (claiming a task we hold renews it)."""
        return Task.of(await self._call("POST", f"{_path(task)}/claim", repeatable=True))

    async def release(self, task: Task) -> Task:
        return Task.of(await self._call("POST", f"{_path(task)}/release"))

    async def complete(self, task: Task, result: Mapping[str, Any]) -> Completed:
        body = await self._call("POST", f"{_path(task)}/complete", json=dict(result))
        return Completed(
            Task.of(body["task"]), str(body["outcome"]), dict(body.get("details") or {})
        )

    # The result each kind takes (services/console/schemas.py).

    async def review(
        self, task: Task, decision: str = "eligible", reason_code: str | None = None
    ) -> Completed:
        return await self.complete(task, {"decision": decision, "reason_code": reason_code})

    async def care_plan(
        self,
        task: Task,
        lines: Sequence[tuple[str, int]] | None = None,
        *,
        providers: Mapping[str, str] | None = None,
        starts: Mapping[str, date] | None = None,
    ) -> Completed:
        """A plan of `lines` (service, quantity); none: a first week of each requested
        service. `providers` and `starts` (by service) choose other than the suggested
        provider and the default start."""
        planned = None
        if lines:
            planned = []
            for service, quantity in lines:
                line: dict[str, Any] = {"service": service, "quantity": quantity}
                if providers and service in providers:
                    line["provider_id"] = providers[service]
                if starts and service in starts:
                    line["planned_start"] = starts[service].isoformat()
                planned.append(line)
        return await self.complete(task, {"decision": "plan", "lines": planned})

    async def waitlist(self, task: Task) -> Completed:
        return await self.complete(task, {"decision": "waitlist"})

    async def could_not_deliver(self, task: Task) -> Completed:
        return await self.complete(task, {"decision": "could-not-deliver"})

    async def visit(
        self,
        task: Task,
        *,
        precautions_acknowledged: bool = True,
        findings: Sequence[str] | None = None,
        notes: str | None = NOTE,
    ) -> Completed:
        """A visit that reached the person: finding codes (none given: the kind's usual
        ones) and a free-text note, which stays in scheduling."""
        return await self.complete(
            task,
            {
                "reached": True,
                "precautions_acknowledged": precautions_acknowledged,
                "findings": list(FINDINGS.get(task.kind, ()) if findings is None else findings),
                "notes": notes,
            },
        )

    async def findings(self) -> list[dict[str, Any]]:
        """The findings vocabulary: `[{code, label: {ko, en}}]`, in the form's order."""
        body = await self._call("GET", "/api/findings", repeatable=True)
        return list(body["findings"])

    async def record_line(
        self,
        task: Task,
        line: int,
        *,
        started_on: date | None = None,
        ended_on: date | None = None,
        delivered_units: int | None = None,
        end_reason: str | None = None,
    ) -> Completed:
        """One step of one line on a delivery task: its start, its end, or both. Outcome
        `line-started`, `line-ended`, or for the last line `delivered` /
        `could-not-deliver` (the task is then done)."""
        body: dict[str, Any] = {"line": line}
        if started_on is not None:
            body["started_on"] = started_on.isoformat()
        if ended_on is not None:
            body.update(
                ended_on=ended_on.isoformat(),
                delivered_units=delivered_units,
                end_reason=end_reason,
            )
        return await self.complete(task, body)

    async def deliver(
        self, task: Task, how: str = "full", *, on: date | None = None
    ) -> Completed | None:
        """Work a delivery task through: every open line started and ended today, with
        what `how` says (`full`: everything ordered; `partial`: the first line half of it,
        the patient moved to a facility, the rest in full; `none`: nothing, the provider
        could not staff). The last answer, None if no line was open."""
        detail = await self.detail(task)
        lines = [
            x for x in detail["case"].get("lines", []) if x["status"] in ("ordered", "started")
        ]
        today = on or datetime.now(SEOUL).date()
        done: Completed | None = None
        for index, line in enumerate(lines):
            quantity = int(line["quantity"])
            units, reason = quantity, None
            if how == "none":
                units, reason = 0, "provider-could-not-staff"
            elif how == "partial" and index == 0:
                units, reason = max(1, quantity // 2), "moved-to-facility"
                if units >= quantity:
                    units, reason = quantity, None
            start = today if units and line["status"] == "ordered" else None
            done = await self.record_line(
                task,
                int(line["line"]),
                started_on=start,
                ended_on=today,
                delivered_units=units,
                end_reason=reason,
            )
        return done

    async def contact_failed(self, task: Task) -> Completed:
        """A call that did not reach the person: outcome `contact-failed`, or `unreachable`
        at the limit (the visit waits on hold; the task is no longer ours)."""
        return await self.complete(task, {"reached": False})

    # -- exits (issue 10) ---------------------------------------------------------

    async def cancel_case(
        self, case_id: str, reason_code: str, note: str | None = None
    ) -> dict[str, Any]:
        """End the case with a coordinator's reason (deceased, transferred, …)."""
        answer: dict[str, Any] = await self._call(
            "POST", f"/api/cases/{case_id}/cancel", json={"reason_code": reason_code, "note": note}
        )
        return answer

    async def reopen(self, task: Task, note: str | None = None) -> Task:
        """Try an unreachable person again: the visit on hold returns to the queue."""
        answer = await self._call(
            "POST", f"/api/tasks/scheduling/{task.id}/reopen", json={"note": note}
        )
        return Task.of(answer)

    async def correct_fee_support(
        self, case_id: str, fee_support: str, note: str
    ) -> dict[str, Any]:
        """A lead corrects the case's fee support before its care plan."""
        answer: dict[str, Any] = await self._call(
            "POST",
            f"/api/cases/{case_id}/fee-support",
            json={"fee_support": fee_support, "note": note},
        )
        return answer

    # -- plumbing -----------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        repeatable: bool = False,
        signed: bool = True,
    ) -> Any:
        http = await self.open()
        signed_in_again = False
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.attempts
            headers = {"Authorization": f"Bearer {self._token}"} if signed and self._token else {}
            try:
                response = await http.request(
                    method, path, json=json, params=params, headers=headers
                )
            except NOT_SENT as exc:
                if last:
                    raise Unavailable(f"{method} {path}: {type(exc).__name__}") from exc
                await self._pause(attempt)
                continue
            except httpx.TransportError as exc:
                # It may have arrived: only what can safely happen twice goes again.
                if last or not repeatable:
                    raise Unavailable(f"{method} {path}: {type(exc).__name__}") from exc
                await self._pause(attempt)
                continue
            status = response.status_code
            if status == 401 and signed and not signed_in_again:
                signed_in_again = True
                await self.sign_in()
                attempt -= 1
                continue
            if status >= 500:
                if not last and (repeatable or status == 503):
                    await self._pause(attempt)
                    continue
                raise Unavailable(f"{method} {path}: HTTP {status} {_code(response)}")
            if status >= 400:
                raise _error(response, signing_in=not signed)
            return response.json()

    async def _pause(self, attempt: int) -> None:
        delay = min(2.0, self.backoff * 2 ** (attempt - 1))
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))


async def sign_in_all(stack: contextlib.AsyncExitStack, clients: Sequence[ConsoleClient]) -> None:
    """Sign every client in at once; each is closed when `stack` closes."""
    for client in clients:
        await client.open()
        stack.push_async_callback(client.close)
    await asyncio.gather(*(client.sign_in() for client in clients))


def _path(task: Task) -> str:
    return f"/api/tasks/{task.service}/{task.id}"


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _code(response: httpx.Response) -> str:
    return str(_body(response).get("error") or "")


def _error(response: httpx.Response, *, signing_in: bool) -> ApiError:
    body = _body(response)
    status = response.status_code
    code = str(body.get("error") or f"http-{status}")
    message = str(body.get("message") or response.reason_phrase)
    if status == 409:
        return Conflict(status, code, message)
    if status == 404:
        return NotFound(status, code, message)
    if status == 401 and signing_in:
        return SignInRefused(status, code, message)
    return ApiError(status, code, message)
