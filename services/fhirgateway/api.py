"""The FHIR R4 REST API at [base] = /fhir on the gateway's port.

    GET    [base]/metadata                         CapabilityStatement (no token)
    GET    [base]/.well-known/smart-configuration  SMART configuration (no token)
    POST   [base]/auth/token                       client_credentials + private_key_jwt
    POST   [base]/Task                             a referral (resources contained)
    POST   [base]                                  a referral as a transaction Bundle
    GET    [base]/Task/{id}                        the Task, as carelink's updates moved it
    PUT    [base]/Task/{id}                        cancel, correct, patient discharged
    GET    [base]/Task?identifier=&status=&_lastUpdated=&_count=
    POST   [base]/Subscription                     rest-hook, id-only (R4 Backport)
    GET    [base]/Subscription/{id}, DELETE        its status; switch it off
    GET    [base]/CodeSystem[/{id}]                carelink's code systems (no token)

Every error is an OperationOutcome (application/fhir+json) naming the element.
Another hospital's Task or Subscription does not exist for a token (404).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from contracts.hospital_v1 import Status
from services.fhirgateway import capability, codes, mapping, notify, store, usecases
from services.fhirgateway.auth import AuthError, Caller, Clients
from services.fhirgateway.outcomes import FHIR_JSON, FhirError, Problem, operation_outcome, single
from services.fhirgateway.settings import BASE_PATH, FhirGatewaySettings
from services.lib.runtime.logging import get_logger
from services.lib.runtime.service import ServiceContext

log = get_logger(__name__)
MAX_BODY_BYTES = 1_000_000
MAX_COUNT = 100
TASK_STATUSES = frozenset({mapping.REQUESTED, *(s.value for s in Status)})
_PREFIXES = ("ge", "gt", "le", "lt", "eq")


def fhir(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        json.dumps(resource, ensure_ascii=False),
        status_code=status,
        media_type=FHIR_JSON,
        headers=headers,
    )


async def read_json(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise single(413, "too-costly", f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise single(400, "structure", "the body is not JSON") from None


def _software_version() -> str:
    try:
        return version("carelink")
    except PackageNotFoundError:
        return "0"


class Gateway:
    """The routes' shared state: the pool, the clients, the settings."""

    def __init__(self, pool: asyncpg.Pool, clients: Clients, settings: FhirGatewaySettings) -> None:
        self.pool = pool
        self.clients = clients
        self.settings = settings

    @property
    def base_url(self) -> str:
        return self.settings.public_base_url

    async def caller(self, request: Request, resource: str, perm: str) -> Caller:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        caller = None
        if scheme.lower() == "bearer" and token.strip():
            caller = await usecases.caller_for(self.pool, token.strip())
        if caller is None:
            raise FhirError(
                401, "login", [Problem("", "a valid access token is required (Bearer)")]
            )
        if not caller.may(resource, perm):
            raise single(403, "forbidden", f"the token's scopes do not allow {resource} {perm}")
        return caller

    def task_url(self, task_id: str) -> str:
        return f"{self.base_url}/Task/{task_id}"


def router(gateway: Gateway) -> APIRouter:
    api = APIRouter(prefix=BASE_PATH)

    @api.get("/metadata")
    async def metadata() -> Response:
        return fhir(capability.capability_statement(gateway.base_url, _software_version()))

    @api.get("/.well-known/smart-configuration")
    async def smart_configuration() -> JSONResponse:
        return JSONResponse(capability.smart_configuration(gateway.base_url))

    @api.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        # Form-encoded (RFC 6749); parsed here, python-multipart is not a dependency.
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise AuthError("invalid_request", "the request is too large")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        answer = await usecases.issue_token(
            gateway.pool,
            gateway.clients,
            form,
            token_url=capability.token_url(gateway.base_url),
            lifetime_s=gateway.settings.fhir_token_lifetime_s,
        )
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    @api.get("/CodeSystem")
    async def code_systems() -> Response:
        resources = list(codes.code_systems().values())
        return fhir(_searchset(gateway.base_url, "CodeSystem", resources))

    @api.get("/CodeSystem/{cs_id}")
    async def code_system(cs_id: str) -> Response:
        resource = codes.code_systems().get(cs_id)
        if resource is None:
            raise single(404, "not-found", f"no CodeSystem/{cs_id}")
        return fhir(resource)

    @api.post("/Task")
    async def create_task(request: Request) -> Response:
        caller = await gateway.caller(request, "Task", "write")
        task = mapping.parse(await read_json(request), "Task")
        state, created = await usecases.submit(
            gateway.pool, caller, task, mapping.References.contained(task), "Task"
        )
        return _task_response(gateway, state, 201 if created else 200)

    # [base] with or without its trailing slash: clients join URLs either way.
    @api.post("")
    @api.post("/")
    async def transaction(request: Request) -> Response:
        caller = await gateway.caller(request, "Task", "write")
        bundle = mapping.parse(await read_json(request), "Bundle")
        task, path, refs = mapping.References.bundle(bundle)
        state, created = await usecases.submit(gateway.pool, caller, task, refs, path)
        status = "201 Created" if created else "200 OK"
        answer = {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [
                {
                    "fullUrl": gateway.task_url(state.id),
                    "resource": mapping.task_resource(state),
                    "response": {
                        "status": status,
                        "location": f"Task/{state.id}/_history/{state.version}",
                    },
                }
            ],
        }
        return fhir(answer)

    @api.get("/Task/{task_id}")
    async def read_task(request: Request, task_id: str) -> Response:
        caller = await gateway.caller(request, "Task", "read")
        async with gateway.pool.acquire() as conn:
            state = await store.task(conn, caller.hospital_id, task_id)
        if state is None:
            raise single(404, "not-found", f"no Task/{task_id}")
        return _task_response(gateway, state, 200)

    @api.put("/Task/{task_id}")
    async def update_task(request: Request, task_id: str) -> Response:
        caller = await gateway.caller(request, "Task", "write")
        task = mapping.parse(await read_json(request), "Task")
        state = await usecases.update_by_hospital(gateway.pool, caller, task_id, task)
        return _task_response(gateway, state, 200)

    @api.get("/Task")
    async def search(request: Request) -> Response:
        caller = await gateway.caller(request, "Task", "read")
        query = request.query_params
        known = {"identifier", "status", "_lastUpdated", "_count"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise single(
                400, "not-supported", f"unsupported search parameters: {', '.join(unknown)}"
            )
        system, value = _identifier(query.get("identifier"))
        statuses = _statuses(query.get("status"))
        after, before = _last_updated(query.getlist("_lastUpdated"))
        count = _count(query.get("_count"))
        async with gateway.pool.acquire() as conn:
            found = await store.search_tasks(
                conn,
                caller.hospital_id,
                identifier_system=system,
                identifier_value=value,
                statuses=statuses,
                updated_after=after,
                updated_before=before,
                limit=count,
            )
        tasks = [mapping.task_resource(state) for state in found]
        return fhir(_searchset(gateway.base_url, "Task", tasks))

    @api.post("/Subscription")
    async def create_subscription(request: Request) -> Response:
        caller = await gateway.caller(request, "Subscription", "write")
        subscription = mapping.parse(await read_json(request), "Subscription")
        endpoint, headers = _rest_hook(subscription, gateway.settings.fhir_allow_http_endpoints)
        sub_id = await usecases.subscribe(gateway.pool, caller, endpoint, headers)
        answer = _subscription_resource(sub_id, "active", endpoint, subscription.get("reason"))
        return fhir(answer, 201, {"Location": f"{gateway.base_url}/Subscription/{sub_id}"})

    @api.get("/Subscription/{sub_id}")
    async def read_subscription(request: Request, sub_id: str) -> Response:
        caller = await gateway.caller(request, "Subscription", "read")
        async with gateway.pool.acquire() as conn:
            row = await store.subscription(conn, caller.hospital_id, sub_id)
        if row is None:
            raise single(404, "not-found", f"no Subscription/{sub_id}")
        resource = _subscription_resource(row["id"], row["status"], row["endpoint"], None)
        if row["last_error"]:
            resource["error"] = row["last_error"]
        return fhir(resource)

    @api.get("/Subscription/{sub_id}/$status")
    async def subscription_status(request: Request, sub_id: str) -> Response:
        """The Backport's $status operation (a server SHALL support it; every notification
        names it): a searchset Bundle of the subscription's status Parameters."""
        caller = await gateway.caller(request, "Subscription", "read")
        async with gateway.pool.acquire() as conn:
            row = await store.subscription(conn, caller.hospital_id, sub_id)
        if row is None:
            raise single(404, "not-found", f"no Subscription/{sub_id}")
        status = notify.subscription_status(
            gateway.base_url, row["id"], row["status"], "query-status", row["events"]
        )
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": 1,
            "entry": [
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid4()}",
                    "resource": status,
                    "search": {"mode": "match"},
                }
            ],
        }
        return fhir(bundle)

    @api.delete("/Subscription/{sub_id}")
    async def delete_subscription(request: Request, sub_id: str) -> Response:
        caller = await gateway.caller(request, "Subscription", "write")
        async with gateway.pool.acquire() as conn:
            if not await store.switch_off(conn, caller.hospital_id, sub_id):
                raise single(404, "not-found", f"no Subscription/{sub_id}")
        return Response(status_code=204)

    return api


def _subscription_resource(
    sub_id: str, status: str, endpoint: str, reason: str | None
) -> dict[str, Any]:
    """A Subscription as the gateway keeps it, in the Backport's backport-subscription
    shape (criteria the topic, payload with its content extension); never its headers."""
    return {
        "resourceType": "Subscription",
        "id": sub_id,
        "meta": {"profile": [codes.BACKPORT_SUBSCRIPTION_PROFILE]},
        "status": status,
        "reason": reason or "Task changes",
        "criteria": codes.TASK_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": FHIR_JSON,
            "_payload": {
                "extension": [{"url": codes.BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]
            },
        },
    }


def _task_response(gateway: Gateway, state: mapping.TaskState, status: int) -> Response:
    headers = {
        "ETag": f'W/"{state.version}"',
        "Last-Modified": state.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT"),
    }
    if status == 201:
        headers["Location"] = f"{gateway.task_url(state.id)}/_history/{state.version}"
    return fhir(mapping.task_resource(state), status, headers)


def _searchset(base_url: str, kind: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{base_url}/{kind}"}],
        "entry": [
            {
                "fullUrl": f"{base_url}/{kind}/{resource['id']}",
                "resource": resource,
                "search": {"mode": "match"},
            }
            for resource in resources
        ],
    }


def _identifier(raw: str | None) -> tuple[str | None, str | None]:
    if raw is None:
        return None, None
    system, bar, value = raw.rpartition("|")
    if not bar:
        return None, raw
    return (system or None), (value or None)


def _statuses(raw: str | None) -> list[str]:
    if raw is None:
        return []
    values = [v.strip() for v in raw.split(",") if v.strip()]
    bad = [v for v in values if v not in TASK_STATUSES]
    if bad:
        raise single(400, "value", f"not a Task status of this server: {', '.join(bad)}", "status")
    return values


def _last_updated(values: list[str]) -> tuple[datetime | None, datetime | None]:
    after = before = None
    for raw in values:
        prefix, text = (raw[:2], raw[2:]) if raw[:2] in _PREFIXES else ("eq", raw)
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise single(
                400, "value", "_lastUpdated must be a dateTime with a prefix", "_lastUpdated"
            ) from None
        if moment.tzinfo is None:
            raise single(400, "value", "_lastUpdated needs a time zone offset", "_lastUpdated")
        if prefix in {"ge", "gt"}:
            after = moment
        elif prefix in {"le", "lt"}:
            before = moment
        else:
            raise single(
                400, "not-supported", "_lastUpdated takes ge, gt, le or lt", "_lastUpdated"
            )
    return after, before


def _count(raw: str | None) -> int:
    if raw is None:
        return 50
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
        raise single(400, "value", f"_count must be 1..{MAX_COUNT}", "_count")
    return int(raw)


def _rest_hook(subscription: dict[str, Any], allow_http: bool) -> tuple[str, list[str]]:
    """The endpoint and headers of an R4 Backport rest-hook, id-only subscription."""
    problems: list[Problem] = []
    if subscription.get("criteria") != codes.TASK_TOPIC:
        problems.append(Problem("Subscription.criteria", f"the one topic is {codes.TASK_TOPIC}"))
    channel = subscription.get("channel") or {}
    if channel.get("type") != "rest-hook":
        problems.append(Problem("Subscription.channel.type", "only rest-hook is supported"))
    endpoint = str(channel.get("endpoint") or "")
    scheme = urlsplit(endpoint).scheme
    if scheme != "https" and not (allow_http and scheme == "http"):
        problems.append(Problem("Subscription.channel.endpoint", "an https URL is required"))
    if channel.get("payload") not in (None, FHIR_JSON):
        problems.append(Problem("Subscription.channel.payload", f"only {FHIR_JSON} is supported"))
    content = [
        ext.get("valueCode")
        for ext in (channel.get("_payload") or {}).get("extension", [])
        if ext.get("url") == codes.BACKPORT_PAYLOAD_CONTENT
    ]
    if content and content[0] != "id-only":
        problems.append(
            Problem(
                "Subscription.channel.payload.extension",
                "only id-only payloads: a notification never carries a Task's content",
            )
        )
    if problems:
        raise FhirError(422, "invalid", problems)
    return endpoint, [str(h) for h in channel.get("header", [])]


def routes(app: FastAPI, context: ServiceContext[FhirGatewaySettings], clients: Clients) -> None:

    async def fhir_error(_request: Request, exc: Exception) -> Response:
        if not isinstance(exc, FhirError):  # registered for FhirError only
            raise exc
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return fhir(operation_outcome(exc), exc.status, headers)

    async def auth_error(_request: Request, exc: Exception) -> Response:
        if not isinstance(exc, AuthError):  # registered for AuthError only
            raise exc
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=exc.status,
            headers={"Cache-Control": "no-store"},
        )

    app.add_exception_handler(FhirError, fhir_error)
    app.add_exception_handler(AuthError, auth_error)
    app.include_router(router(Gateway(context.pool, clients, context.settings)))
