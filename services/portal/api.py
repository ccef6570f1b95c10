"""The portal's JSON API, for scripts and tests; the pages are the main interface.

Sign in with `POST /api/session` (username and password) to get a token, then send
`Authorization: Bearer <token>`. A user reaches only their own hospital's referrals:
another hospital's referral is a 404, exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, Field

from services.lib.hospitalside.timeline import Gap, latest, ordered
from services.lib.hospitalside.updates import latest_updates, referral_updates
from services.lib.runtime.logging import get_logger
from services.portal import store
from services.portal.errors import PortalError
from services.portal.state import portal_of
from services.portal.users import User

log = get_logger(__name__)


class ErrorOut(BaseModel):
    """Every error of the API: a stable code and a message (never the values sent)."""

    error: str = Field(description="invalid-request, unauthorized, not-found, throttled …")
    message: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "the request does not match this document"}
}
_SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "not signed in"},
    **_ERRORS,
}
router = APIRouter(prefix="/api", responses=_ERRORS)

ReferralIdPath = Annotated[str, Path(min_length=1, max_length=64)]


def api_user(request: Request) -> User:
    user = portal_of(request).user_from(request)
    if user is None:
        raise PortalError(401, "unauthorized", "sign in first (POST /api/session)")
    return user


ApiUser = Annotated[User, Depends(api_user)]


class Credentials(BaseModel):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class SessionToken(BaseModel):
    token: str
    hospital_id: str
    expires_in_s: int


class Health(BaseModel):
    ok: bool


class ReferralSummary(BaseModel):
    referral_id: str
    submitted_at: datetime | None
    status: str | None = Field(description="The latest status received; null before the first")
    business_status: str | None
    last_update_at: datetime | None
    sequence: int | None


class TimelineItem(BaseModel):
    kind: str = Field(description='"update", or "gap" for sequences not received (yet)')
    sequence: int | None = None
    status: str | None = None
    business_status: str | None = None
    reason_code: str | None = None
    occurred_at: datetime | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    first_missing: int | None = None
    last_missing: int | None = None


class SentEventOut(BaseModel):
    ce_type: str
    ce_id: str
    sent_at: datetime
    sent_by: str


class ReferralDetail(BaseModel):
    referral_id: str
    submission: dict[str, Any]
    timeline: list[TimelineItem]
    sent: list[SentEventOut]
    status: str | None
    outcome_report: dict[str, Any] | None


@router.get("/health", response_model=Health, tags=["health"])
async def health() -> Health:
    return Health(ok=True)


@router.post(
    "/session",
    response_model=SessionToken,
    tags=["session"],
    responses={
        401: {"model": ErrorOut, "description": "wrong credentials"},
        429: {"model": ErrorOut, "description": "throttled: try again after Retry-After"},
    },
)
async def sign_in(request: Request, credentials: Credentials, response: Response) -> SessionToken:
    portal = portal_of(request)
    address = request.client.host if request.client else ""
    wait = portal.throttle.retry_after(credentials.username, address)
    if wait is not None:
        raise PortalError(429, "throttled", f"too many attempts; retry after {wait} s")
    user = await portal.users.authenticate(credentials.username, credentials.password)
    if user is None:
        portal.throttle.failed(credentials.username, address)
        log.info("sign-in refused", channel="api")
        raise PortalError(401, "unauthorized", "unknown username or wrong password")
    portal.throttle.succeeded(credentials.username)
    return SessionToken(
        token=portal.sessions.issue(user.username),
        hospital_id=user.hospital_id,
        expires_in_s=portal.sessions.max_age_s,
    )


@router.get(
    "/referrals", response_model=list[ReferralSummary], tags=["referrals"], responses=_SIGNED_IN
)
async def list_referrals(request: Request, user: ApiUser) -> list[ReferralSummary]:
    """My hospital's submitted referrals, most recently changed first."""
    async with portal_of(request).pool.acquire() as conn:
        rows = [
            r for r in await store.list_referrals(conn, user.hospital_id) if r.state == "submitted"
        ]
        current = await latest_updates(conn, user.hospital_id, [r.referral_id or "" for r in rows])
    out = []
    for row in rows:
        rid = row.referral_id or ""
        update = current.get(rid)
        out.append(
            ReferralSummary(
                referral_id=rid,
                submitted_at=row.submitted_at,
                status=update.status if update else None,
                business_status=update.business_status if update else None,
                last_update_at=update.occurred_at if update else None,
                sequence=update.sequence if update else None,
            )
        )
    return out


@router.get(
    # The rest of the path: a referral id may hold "/" (percent-encode it all the same).
    "/referrals/{referral_id:path}",
    response_model=ReferralDetail,
    tags=["referrals"],
    responses={
        **_SIGNED_IN,
        404: {"model": ErrorOut, "description": "no such referral of your hospital"},
    },
)
async def get_referral(
    request: Request, user: ApiUser, referral_id: ReferralIdPath
) -> ReferralDetail:
    """One referral: what was sent, and its updates by sequence with the gaps."""
    async with portal_of(request).pool.acquire() as conn:
        found = await store.submitted(conn, user.hospital_id, referral_id)
        if found is None:
            raise PortalError(404, "not-found", "no such referral")
        updates = await referral_updates(conn, user.hospital_id, referral_id)
        sent = await store.sent_events(conn, user.hospital_id, referral_id)
    items: list[TimelineItem] = []
    for item in ordered(updates):
        if isinstance(item, Gap):
            items.append(TimelineItem(kind="gap", first_missing=item.first, last_missing=item.last))
        else:
            items.append(
                TimelineItem(
                    kind="update",
                    sequence=item.sequence,
                    status=item.status,
                    business_status=item.business_status,
                    reason_code=item.reason_code,
                    occurred_at=item.occurred_at,
                    details=item.details,
                )
            )
    current = latest(updates)
    report = next(
        (u.details.get("outcome_report") for u in reversed(updates) if u.status == "completed"),
        None,
    )
    return ReferralDetail(
        referral_id=referral_id,
        submission=found.submission or {},
        timeline=items,
        sent=[
            SentEventOut(ce_type=e.ce_type, ce_id=e.ce_id, sent_at=e.sent_at, sent_by=e.sent_by)
            for e in sent
        ],
        status=current.status if current else None,
        outcome_report=report if isinstance(report, dict) else None,
    )
