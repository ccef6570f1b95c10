"""The FHIR gateway's settings (`CARELINK_*` variables; see services.lib.runtime.settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from services.lib.runtime.settings import ServiceSettings

DEFAULT_PORT = 8191
BASE_PATH = "/fhir"


class FhirGatewaySettings(ServiceSettings):
    service: Literal["fhirgateway"] = "fhirgateway"
    # The FHIR API and the health endpoints share this port ([base] = /fhir on it).
    health_port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    # The base URL hospitals use, as they reach it (behind the Ingress in production):
    # the token endpoint's audience and the references in notifications. Empty: the
    # local address http://<health_host>:<health_port>/fhir.
    fhir_base_url: str = ""
    # Hospitals' EHR clients (client id, hospital, public keys); None = deploy/config's.
    fhir_clients_file: Path | None = None
    # Access tokens live this long (SMART Backend Services: short, the client asks again).
    fhir_token_lifetime_s: int = Field(default=300, ge=30, le=3600)
    # Subscription endpoints must be https; http only where a test or a laptop needs it.
    fhir_allow_http_endpoints: bool = False
    # Notification deliveries: retried with backoff, at most this many attempts.
    notify_max_attempts: int = Field(default=8, ge=1, le=50)
    notify_base_delay_s: float = Field(default=1.0, gt=0)
    notify_max_delay_s: float = Field(default=300.0, gt=0)
    notify_timeout_s: float = Field(default=5.0, gt=0)
    notify_poll_interval_s: float = Field(default=0.5, gt=0)
    notify_batch_size: int = Field(default=20, ge=1)

    @property
    def public_base_url(self) -> str:
        if self.fhir_base_url:
            return self.fhir_base_url.rstrip("/")
        return f"http://{self.health_host}:{self.health_port}{BASE_PATH}"
