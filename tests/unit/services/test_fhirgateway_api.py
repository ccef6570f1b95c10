"""The FHIR gateway's search and subscription parameters (issue 14): what is refused
is an OperationOutcome naming the parameter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.fhirgateway import api, codes
from services.fhirgateway.outcomes import FhirError
from tests.fhir_builders import as_json, rest_hook_subscription


def test_identifier_takes_system_and_value_or_a_value() -> None:
    assert api._identifier("https://ehr.example/referral|R-1") == (
        "https://ehr.example/referral",
        "R-1",
    )
    assert api._identifier("R-1") == (None, "R-1")
    assert api._identifier("|R-1") == (None, "R-1")
    assert api._identifier(None) == (None, None)


def test_status_values_are_task_statuses() -> None:
    assert api._statuses("received, in-progress") == ["received", "in-progress"]
    with pytest.raises(FhirError) as error:
        api._statuses("received,done")
    assert error.value.problems[0].path == "status"
    assert "done" in error.value.problems[0].message


def test_last_updated_takes_prefixed_instants_with_an_offset() -> None:
    after, before = api._last_updated(["ge2026-12-01T00:00:00+09:00", "lt2026-12-02T00:00:00Z"])
    assert after == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert before == datetime(2026, 12, 2, 0, 0, tzinfo=UTC)
    for bad in (["ge2026-12-01T00:00:00"], ["yesterday"], ["2026-12-01T00:00:00Z"]):
        with pytest.raises(FhirError) as error:
            api._last_updated(bad)
        assert error.value.problems[0].path == "_lastUpdated"


def test_count_is_bounded() -> None:
    assert api._count(None) == 50
    assert api._count("100") == 100
    for bad in ("0", "101", "-1", "ten"):
        with pytest.raises(FhirError):
            api._count(bad)


def test_a_subscription_must_be_an_id_only_rest_hook_to_https() -> None:
    good = as_json(rest_hook_subscription("https://ehr.example/hook"))
    good["channel"]["header"] = ["Authorization: Bearer ehr-secret"]
    assert api._rest_hook(good, allow_http=False) == (
        "https://ehr.example/hook",
        ["Authorization: Bearer ehr-secret"],
    )
    plain = as_json(rest_hook_subscription("http://ehr.example/hook"))
    with pytest.raises(FhirError) as error:
        api._rest_hook(plain, allow_http=False)
    assert [p.path for p in error.value.problems] == ["Subscription.channel.endpoint"]
    assert api._rest_hook(plain, allow_http=True)[0] == "http://ehr.example/hook"
    full = as_json(rest_hook_subscription("https://ehr.example/hook"))
    full["channel"]["_payload"]["extension"][0]["valueCode"] = "full-resource"
    full["criteria"] = "Patient?"
    with pytest.raises(FhirError) as error:
        api._rest_hook(full, allow_http=False)
    assert {p.path for p in error.value.problems} == {
        "Subscription.criteria",
        "Subscription.channel.payload.extension",
    }
    assert codes.TASK_TOPIC in error.value.problems[0].message
