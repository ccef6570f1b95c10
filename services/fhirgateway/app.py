"""Composition root of the FHIR gateway (issue 14).

A hospital-side deployable: towards hospitals' EHRs a FHIR R4 API (api.py); towards
carelink a hospital system like any other (services/lib/hospitalside), publishing the
contract's hospital events through its outbox and following the served hospitals'
updates topics into its Tasks. The served hospitals are those of the clients file: it
reads no other hospital's updates. It owns its database and connects to no other; no
service imports it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI

from services.fhirgateway import api
from services.fhirgateway.auth import Clients
from services.fhirgateway.notify import run_notifier
from services.fhirgateway.settings import FhirGatewaySettings
from services.fhirgateway.usecases import FollowUpdates
from services.lib import hospitalside
from services.lib.hospitalside.updates import updates_topics
from services.lib.runtime.service import ServiceContext, ServiceSpec


def build_spec(settings: FhirGatewaySettings, clients: Clients) -> ServiceSpec[FhirGatewaySettings]:
    """The gateway as a service, for these settings and the clients already loaded."""
    served = sorted(clients.hospital_ids)

    def routes(app: FastAPI, context: ServiceContext[FhirGatewaySettings]) -> None:
        api.routes(app, context, clients)

    def notifier(context: ServiceContext[FhirGatewaySettings], stop: asyncio.Event) -> object:
        return run_notifier(context.pool, context.settings, stop)

    return ServiceSpec(
        name="fhirgateway",
        settings=lambda: settings,
        migrations=Path(__file__).with_name("migrations"),
        extra_migrations=[("hospitalside", hospitalside.MIGRATIONS)],
        # Only the served hospitals' updates: never another hospital's.
        topics=lambda _registry: updates_topics(served),
        handler=lambda _context: FollowUpdates(served),
        routes=routes,
        extra_tasks=(notifier,),
    )
