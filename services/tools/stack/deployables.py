"""The deployables the local stack starts, and their local default ports.

Tools know the system's shape from here, never by importing a deployable; a
contract test checks these ports against each service's own settings.
"""

from __future__ import annotations

SERVICES = ("intake", "referral", "scheduling", "outcome")
# Distinct per service, so all of them can run side by side on one machine.
HEALTH_PORTS = {"intake": 8181, "referral": 8182, "scheduling": 8183, "outcome": 8184}
CONSOLE = "console"
CONSOLE_PORT = 8180
# The FHIR gateway for hospitals' EHRs (issue 14): its FHIR base is /fhir on this port.
FHIR_GATEWAY = "fhirgateway"
FHIR_GATEWAY_PORT = 8191
# The medical social workers' portal (issue 13): pages, its /api and health on this port.
PORTAL = "portal"
PORTAL_PORT = 8190
