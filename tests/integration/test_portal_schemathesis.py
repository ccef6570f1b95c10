"""The portal's API keeps to its own OpenAPI document: a bounded schemathesis run
(property-based requests generated from /api/openapi.json) against a running portal,
signed in as a social worker, with schemathesis' checks (no server error, documented
status codes, content types and response schemas)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from services.tools.localinfra import Endpoints
from tests.integration.portal_helpers import RunningPortal, start_portal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def portal(
    endpoints: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPortal]:
    running = start_portal(endpoints, tmp_path_factory.mktemp("portal-api"))
    try:
        yield running
    finally:
        running.process.stop()


@pytest.fixture(scope="module")
def token(portal: RunningPortal) -> str:
    user = next(iter(portal.users.values()))
    answer = httpx.post(
        f"{portal.url}/api/session",
        json={"username": user.username, "password": user.password},
        timeout=20,
    )
    answer.raise_for_status()
    value: str = answer.json()["token"]
    return value


def test_the_portal_api_keeps_to_its_openapi_document(portal: RunningPortal, token: str) -> None:
    schema = schemathesis.openapi.from_url(f"{portal.url}/api/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an unusable operation: {result}"
        operations.append(result.ok())
    assert {op.path for op in operations} >= {"/api/referrals", "/api/referrals/{referral_id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def keeps_to_it(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(base_url=portal.url, headers=headers)

        keeps_to_it()
