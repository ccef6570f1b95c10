"""`python -m services.fhirgateway`: the FHIR gateway on CARELINK_HEALTH_HOST:PORT
(127.0.0.1:8191 by default), its FHIR base at /fhir.

Before anything connects, the registry and the clients file are checked: a file that
does not load, a client of a hospital the registry does not know, or no client at
all (nothing to serve) stops the gateway with exit code 2.
"""

from __future__ import annotations

import sys

from services.fhirgateway.app import build_spec
from services.fhirgateway.auth import load_clients
from services.fhirgateway.settings import FhirGatewaySettings
from services.lib.policy import PolicyError, load_registry
from services.lib.runtime.service import main

EXIT_CONFIGURATION = 2


def _refuse(problem: str) -> None:
    print(f"carelink fhirgateway: configuration error, not starting: {problem}", file=sys.stderr)
    sys.exit(EXIT_CONFIGURATION)


def run() -> None:
    settings = FhirGatewaySettings()
    try:
        clients = load_clients(settings.fhir_clients_file, load_registry(settings.registry_file))
    except PolicyError as exc:
        _refuse(str(exc))
        return
    if not len(clients):
        _refuse("no FHIR client configured (CARELINK_FHIR_CLIENTS_FILE): no hospital to serve")
    main(build_spec(settings, clients))


run()
