"""An in-memory stand-in for the console's /api (services/console/api.py), as an httpx
transport: enough of the contract (sign-in, queue, claim, complete with each kind's
result, the error codes) to test the simulated staff without servers. Faults can be
queued: an exception to raise or an HTTP status to answer, for the next request
matching a method and path suffix."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx

LEASE = timedelta(minutes=30)
MAX_ATTEMPTS = 3


@dataclass
class FakeTask:
    service: str
    id: int
    kind: str
    case_id: str
    centre_id: str
    priority: str = "routine"
    due_at: datetime = field(default_factory=lambda: datetime.now(UTC) + timedelta(hours=72))
    status: str = "open"
    claimed_by: str | None = None
    lease_until: datetime | None = None
    attempts: int = 0
    result: dict[str, Any] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    completed_by: str | None = None

    def out(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        return {
            "service": self.service,
            "id": self.id,
            "kind": self.kind,
            "case_id": self.case_id,
            "centre_id": self.centre_id,
            "priority": self.priority,
            "due_at": self.due_at.isoformat(),
            "window_start": None,
            "status": self.status,
            "overdue": self.due_at < now,
            "claimed_by": self.claimed_by,
            "lease_until": self.lease_until.isoformat() if self.lease_until else None,
            "attempts": self.attempts,
            "result": self.result,
            "created_at": self.created_at.isoformat(),
            "completed_at": None,
            "completed_by": self.completed_by,
        }


@dataclass
class Fault:
    method: str
    path_end: str
    then: Exception | int


class FakeConsole:
    def __init__(self, users: dict[str, tuple[str, str]]) -> None:
        self.users = users  # username -> (password, centre_id)
        self.tasks: dict[tuple[str, int], FakeTask] = {}
        self.tokens: dict[str, str] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.actions: list[tuple[str, str, int]] = []  # (username, action, task id)
        self._ids = itertools.count(1)
        self._tokens = itertools.count(1)
        self.transport = httpx.MockTransport(self.handle)

    def add(self, kind: str, case_id: str, centre_id: str, **fields: Any) -> FakeTask:
        service = "referral" if kind in ("review", "care-plan") else "scheduling"
        task = FakeTask(service, next(self._ids), kind, case_id, centre_id, **fields)
        self.tasks[(service, task.id)] = task
        return task

    def fail(self, method: str, path_end: str, then: Exception | int) -> None:
        self.faults.append(Fault(method, path_end, then))

    def forget_sessions(self) -> None:
        """As a console restarted with a new key: every token stops working."""
        self.tokens.clear()

    # -- the transport --------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.requests.append((method, path))
        for fault in self.faults:
            if fault.method == method and path.endswith(fault.path_end):
                self.faults.remove(fault)
                if isinstance(fault.then, Exception):
                    raise fault.then
                return _error(fault.then, "injected", "an injected fault")
        if (method, path) == ("POST", "/api/login"):
            return self._login(json.loads(request.content))
        user = self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))
        if user is None:
            return _error(401, "unauthorized", "sign in")
        if (method, path) == ("GET", "/api/queue"):
            return self._queue(user, parse_qs(request.url.query.decode()))
        parts = path.split("/")  # "", "api", "tasks", service, id, action
        if len(parts) == 6 and parts[:3] == ["", "api", "tasks"] and method == "POST":
            task = self.tasks.get((parts[3], int(parts[4])))
            if task is None or task.centre_id != self.users[user][1]:
                return _error(404, "not-found", "no such task")
            body = json.loads(request.content) if request.content else {}
            return self._act(user, task, parts[5], body)
        return _error(404, "not-found", path)

    def _login(self, body: dict[str, Any]) -> httpx.Response:
        known = self.users.get(body["username"])
        if known is None or known[0] != body["password"]:
            return _error(401, "unauthorized", "unknown username or wrong password")
        token = f"t{next(self._tokens)}"
        self.tokens[token] = body["username"]
        user = {
            "username": body["username"],
            "display_name": body["username"],
            "centre_id": known[1],
            "role": "coordinator",
        }
        return httpx.Response(
            200, json={"token": token, "token_type": "bearer", "expires_in": 3600, "user": user}
        )

    def _queue(self, user: str, query: dict[str, list[str]]) -> httpx.Response:
        statuses = set(",".join(query.get("status", ["open,claimed"])).split(","))
        kinds = set(",".join(query.get("kind", [])).split(",")) - {""}
        limit = int(query.get("limit", ["200"])[0])
        centre = self.users[user][1]
        found = sorted(
            (
                t
                for t in self.tasks.values()
                if t.centre_id == centre and t.status in statuses and (not kinds or t.kind in kinds)
            ),
            key=lambda t: (t.priority != "urgent", t.due_at, t.service, t.id),
        )
        return httpx.Response(
            200, json={"centre_id": centre, "tasks": [t.out() for t in found[:limit]]}
        )

    def _act(self, user: str, task: FakeTask, action: str, body: dict[str, Any]) -> httpx.Response:
        now = datetime.now(UTC)
        if action == "claim":
            if task.status not in ("open", "claimed"):
                return _error(409, "task-closed", f"task is {task.status}")
            held = task.status == "claimed" and task.lease_until and task.lease_until >= now
            if held and task.claimed_by != user:
                return _error(409, "claimed-by-other", "someone else holds it")
            task.status, task.claimed_by, task.lease_until = "claimed", user, now + LEASE
            self.actions.append((user, "claim", task.id))
            return httpx.Response(200, json=task.out())
        if action != "complete":
            return _error(404, "not-found", action)
        if task.status != "claimed" or task.claimed_by != user:
            return _error(409, "not-claimed", "claim it first")
        outcome, details = self._complete(task, body)
        self.actions.append((user, f"complete:{outcome}", task.id))
        return httpx.Response(
            200, json={"task": task.out(), "outcome": outcome, "details": details}
        )

    def _complete(self, task: FakeTask, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if task.kind in ("pre-discharge-visit", "post-discharge-visit"):
            if body.get("reached") is False:
                task.attempts += 1
                if task.attempts >= MAX_ATTEMPTS:
                    task.status, task.claimed_by, task.lease_until = "suspended", None, None
                    return "unreachable", {}
                return "contact-failed", {}
            task.status, task.completed_by, task.result = "done", task.claimed_by, body
            return "visited", {}
        if task.kind == "care-plan" and body.get("decision") == "waitlist":
            task.status, task.claimed_by, task.lease_until = "open", None, None
            return "waitlisted", {}
        task.status, task.completed_by, task.result = "done", task.claimed_by, body
        if task.kind == "review":
            return "reviewed", {"decision": body["decision"]}
        if body.get("decision") == "could-not-deliver":
            return "could-not-deliver", {}
        return "plan", {"outcome": "plan", "partial": False, "total_krw": 1000}


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "message": message})
