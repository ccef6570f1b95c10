"""Intake's HTTP API for finding cases (issue 10), beside services.intake.api:

    POST /v1/cards                   {case_ids}: the cards of a page of cases, one call
    POST /v1/search                  {referral_id} | {case_id} | {name, birth_date}
    GET  /v1/cases/{case_id}/card    a case's card, its referrals and earlier cases

Only the coordinator's centre's cases are answered (the centre intake routed each
case to, as for personal details); others are left out, or 404 for one case.

A card holds initials and an age band, the district and dong: what a queue row may
show before a task is opened (services.intake.cards), so reading cards leaves no
audit row (a queue refreshes itself every few seconds). A search does: it takes a
name and birth date, or ids that lead to a person, so it is recorded in
`search_audit` (who, how, how many found; never the values) and every case it
found in `access_audit` (purpose `search`). Searches go in a POST body, never in a
URL, so what is typed stays out of access logs and browser history.
"""

# No `from __future__ import annotations`: FastAPI resolves string annotations in the
# module's globals, and the routes' `Caller` dependency is local to the router factory.

from datetime import date, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.intake import cards, lookups
from services.lib.policy import Registry
from services.lib.runtime.api_errors import ApiError
from services.lib.runtime.callers import Actor, Callers
from services.lib.runtime.logging import get_logger
from services.lib.runtime.responses import model_response

log = get_logger(__name__)
CaseId = Annotated[str, Path(min_length=1, max_length=100)]
MAX_CARDS = 500
MAX_RESULTS = 50


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CardsBody(_In):
    case_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        max_length=MAX_CARDS
    )


class CardView(BaseModel):
    case_id: str
    open: bool
    initials: str | None
    age_band: str | None
    district: str | None
    dong: str | None


class CardsView(BaseModel):
    cards: list[CardView]


class SearchBody(_In):
    """One way to search: the hospital's referral id, the case id, or name and birth date."""

    referral_id: str | None = Field(default=None, min_length=1, max_length=64)
    case_id: str | None = Field(default=None, min_length=1, max_length=100)
    name: str | None = Field(default=None, min_length=1, max_length=100)
    birth_date: date | None = None

    @model_validator(mode="after")
    def _one_way(self) -> "SearchBody":
        ways = [self.referral_id is not None, self.case_id is not None]
        ways.append(self.name is not None or self.birth_date is not None)
        if sum(ways) != 1:
            raise ValueError("search by one of: referral_id, case_id, or name with birth_date")
        if (self.name is None) != (self.birth_date is None):
            raise ValueError("a search by name needs the birth date too (and the other way)")
        if self.name is not None and not self.name.strip():
            raise ValueError("name: empty")
        return self

    @property
    def way(self) -> Literal["referral-id", "case-id", "name-birth-date"]:
        if self.referral_id is not None:
            return "referral-id"
        return "case-id" if self.case_id is not None else "name-birth-date"


class ReferralRef(BaseModel):
    hospital_id: str
    referral_id: str
    outcome: str
    received_at: datetime


class FoundCase(CardView):
    opened_at: datetime
    referrals: list[ReferralRef]


class SearchView(BaseModel):
    searched_by: str
    results: list[FoundCase]


class CaseCardView(FoundCase):
    earlier: list[FoundCase] = Field(
        description="the same person's earlier cases of this centre that closed, newest first"
    )


def lookup_router(pool: asyncpg.Pool, registry: Registry, callers: Callers) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Actor, Depends(callers.actor)]

    # Each district's centre, looked up once: a page of cards asks for 200 rows, and
    # Registry.centre_for walks every centre (one per district, so no district repeats).
    centre_of = {c.district: c.id for c in registry.centres}

    def ours(actor: Actor, opening: lookups.Opening) -> bool:
        district = opening.district
        return district is not None and centre_of.get(district) == actor.centre_id

    async def found(conn: asyncpg.Connection, chosen: list[lookups.Opening]) -> list[FoundCase]:
        refs = await lookups.referrals_of(conn, [o.case_id for o in chosen])
        return [
            FoundCase(
                **o.card().view(),
                opened_at=o.created_at,
                referrals=[ReferralRef(**r) for r in refs.get(o.case_id, [])],
            )
            for o in chosen
        ]

    @router.post("/cards", response_model=CardsView)
    async def cards_of(actor: Caller, body: CardsBody) -> Response:
        """The cards of the centre's cases among `case_ids` (others left out), in one query."""
        async with pool.acquire() as conn:
            known = await lookups.card_openings(conn, list(dict.fromkeys(body.case_ids)))
        # Serialised once (a queue page asks for 200): services.lib.runtime.responses.
        return model_response(
            CardsView(cards=[CardView(**o.card().view()) for o in known.values() if ours(actor, o)])
        )

    @router.post("/search", response_model=SearchView)
    async def search(actor: Caller, body: SearchBody) -> SearchView:
        """The centre's cases found by referral id, case id, or name and birth date;
        recorded in the search and access audits with the search (one transaction)."""
        async with pool.acquire() as conn, conn.transaction():
            wanted = None
            if body.referral_id is not None:
                candidates = await lookups.cases_by_referral_id(conn, body.referral_id)
            elif body.case_id is not None:
                candidates = [body.case_id]
            elif body.name is not None and body.birth_date is not None:
                candidates, wanted = await lookups.cases_of_person(conn, body.name, body.birth_date)
            else:  # SearchBody allows no other way
                raise ApiError(422, "invalid-request", "search by one way")
            known = await lookups.openings(conn, candidates)
            chosen = sorted(
                (
                    o
                    for o in known.values()
                    if ours(actor, o)
                    and (wanted is None or cards.same_person(wanted, o.submission))
                ),
                key=lambda o: o.created_at,
                reverse=True,
            )[:MAX_RESULTS]
            results = await found(conn, chosen)
            await lookups.record_search(
                conn,
                viewer=actor.username,
                centre_id=actor.centre_id,
                searched_by=body.way,
                found=[o.case_id for o in chosen],
            )
        log.info(
            "cases searched",
            actor=actor.username,
            caller=actor.caller,
            centre_id=actor.centre_id,
            searched_by=body.way,
            found=len(results),
        )
        return SearchView(searched_by=body.way, results=results)

    @router.get("/cases/{case_id}/card", response_model=CaseCardView)
    async def case_card(actor: Caller, case_id: CaseId) -> CaseCardView:
        """The case's card and referrals, and the same person's earlier closed cases."""
        async with pool.acquire() as conn:
            opening = (await lookups.openings(conn, [case_id])).get(case_id)
            if opening is None or not ours(actor, opening):
                raise ApiError(404, "not-found", "no such case")
            earlier = [o for o in await lookups.earlier_cases(conn, opening) if ours(actor, o)]
            this, *before = await found(conn, [opening, *earlier])
        return CaseCardView(**this.model_dump(), earlier=before)

    return router
