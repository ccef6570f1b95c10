"""The console's API against its own OpenAPI document (schemathesis), on the running
system: for every operation a bounded number of generated requests, signed in as a
demo coordinator. No answer may be a server error, use a status code the document does
not list, or break the documented response schema; and no request the schema calls
valid may be refused as invalid (positive data acceptance: 404/409 for ids that do not
exist or a state that forbids the step are fine, a 422 is not).

Left out: sign-in and sign-out (random credentials would trip the sign-in throttle for
the whole test session's address; sign-out would end the session the run uses; both are
tested in test_console_signin.py) and the live event stream (it never ends)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.tools.stack import SystemInfo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

EXAMPLES = 6  # per operation: enough to meet each constraint, cheap enough for every run
SKIPPED = {"POST /api/login", "POST /api/logout", "GET /api/events"}


def test_every_console_operation_keeps_to_its_openapi_document(system_info: SystemInfo) -> None:
    console = system_info.console
    login = httpx.post(
        f"{console}/api/login", json={"username": "songpa", "password": "songpa-demo"}
    )
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    schema = schemathesis.openapi.from_url(f"{console}/api/openapi.json")

    operations = [result.ok() for result in schema.get_all_operations()]
    tested, failures = [], []
    for operation in operations:
        if operation.label in SKIPPED:
            continue

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(), data=st.data())
        def run(case: Any, data: Any) -> None:
            case.call_and_validate(base_url=console, headers=auth)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # every operation is reported
            failures.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:2500]}")
        tested.append(operation.label)

    assert len(tested) >= 10, tested  # the document was read and walked
    assert not failures, "\n\n".join(failures)
