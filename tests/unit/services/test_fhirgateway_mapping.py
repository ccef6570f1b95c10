"""The FHIR gateway's mapping, both ways (issue 14): resources built with the model
library (fhir.resources) become exactly the contract's events, and every status of
the contract moves the Task to a valid FHIR Task."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.task import Task

from contracts.fhir_task import check_path
from contracts.hospital_v1 import (
    PatientDischarged,
    ReferralCancelled,
    ReferralSubmitted,
    ReferralUpdated,
    Status,
    StatusChanged,
)
from contracts.reasons import codes_for, reason
from services.fhirgateway import codes, mapping
from services.fhirgateway.outcomes import FhirError, operation_outcome
from services.tools.simulators.referrals import FakeHospital
from tests.fhir_builders import as_json, referral_bundle, referral_task

HOSPITAL = "police-hospital"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def data() -> dict[str, Any]:
    return FakeHospital(HOSPITAL, seed=7).submission()


def submit(body: dict[str, Any], hospital: str = HOSPITAL) -> mapping.Submission:
    task = mapping.parse(body, "Task")
    return mapping.submission(task, mapping.References.contained(task), hospital_id=hospital)


def problems(error: pytest.ExceptionInfo[FhirError]) -> dict[str, str]:
    return {p.path: p.message for p in error.value.problems}


def test_a_task_with_contained_resources_is_the_contracts_submission(data: dict[str, Any]) -> None:
    submitted = submit(as_json(referral_task(data)))
    assert submitted.event == ReferralSubmitted.model_validate(data)
    assert submitted.identifier_system == "https://ehr.example/referral"


def test_a_transaction_bundle_is_the_same_submission(data: dict[str, Any]) -> None:
    bundle = mapping.parse(as_json(referral_bundle(data)), "Bundle")
    task, path, refs = mapping.References.bundle(bundle)
    submitted = mapping.submission(task, refs, hospital_id=HOSPITAL, root=path)
    assert submitted.event == ReferralSubmitted.model_validate(data)
    assert path.startswith("Bundle.entry[")


def test_a_consent_that_is_not_active_is_no_consent(data: dict[str, Any]) -> None:
    submitted = submit(
        as_json(referral_task({**data, "consent": {**data["consent"], "given": False}}))
    )
    assert submitted.event.consent.given is False  # intake then rejects missing-consent


def test_an_invalid_fhir_element_is_named_by_its_path(data: dict[str, Any]) -> None:
    body = as_json(referral_task(data))
    body["input"][1]["valueDate"] = "2026-13-45"
    body["contained"][0]["birthDate"] = "not a date"
    with pytest.raises(FhirError) as error:
        submit(body)
    assert error.value.status == 422
    assert set(problems(error)) == {"Task.input[1].valueDate", "Task.contained[0].birthDate"}
    assert "not a date" not in str(error.value)  # the value is never echoed


def test_a_contract_violation_is_named_by_the_fhir_element(data: dict[str, Any]) -> None:
    body = as_json(referral_task(data))
    del body["contained"][0]["address"][0]["district"]
    body["input"][1]["valueDate"] = "2001-01-01"  # before admission
    body["contained"][3]["orderDetail"] = [
        {"coding": [{"system": codes.SERVICE_SYSTEM, "code": "massage"}]}
    ]
    with pytest.raises(FhirError) as error:
        submit(body)
    found = problems(error)
    assert "Task.contained[0].address[0].district" in found
    assert "Task.input[1]" in found
    assert "admission_date" in found["Task.input[1]"]
    assert "Task.contained[3].orderDetail" in found


def test_missing_parts_are_named(data: dict[str, Any]) -> None:
    body = as_json(referral_task(data))
    body["status"] = "in-progress"
    body["identifier"] = []
    del body["requester"]
    with pytest.raises(FhirError) as error:
        submit(body)
    assert {"Task.status", "Task.requester"} <= set(problems(error))
    body = as_json(referral_task(data))
    body["focus"] = {"reference": "#nowhere"}
    with pytest.raises(FhirError) as error:
        submit(body)
    assert set(problems(error)) == {"Task.focus"}


def test_a_requester_of_another_hospital_is_forbidden(data: dict[str, Any]) -> None:
    with pytest.raises(FhirError) as error:
        submit(as_json(referral_task(data)), hospital="severance")
    assert error.value.status == 403
    assert set(problems(error)) == {"Task.requester"}


def test_not_fhir_at_all_is_refused() -> None:
    with pytest.raises(FhirError) as error:
        mapping.parse({"resourceType": "Nonsense"}, None)
    assert error.value.status == 400
    with pytest.raises(FhirError) as error:
        mapping.parse({"resourceType": "Patient"}, "Task")
    assert set(problems(error)) == {"resourceType"}


def test_errors_are_operation_outcomes_with_the_path(data: dict[str, Any]) -> None:
    body = as_json(referral_task(data))
    body["input"][0]["valueDate"] = "yesterday"
    with pytest.raises(FhirError) as error:
        submit(body)
    outcome = OperationOutcome.model_validate(operation_outcome(error.value))
    assert outcome.issue[0].expression == ["Task.input[0].valueDate"]
    assert outcome.issue[0].code == "invalid"


# --- out: every status of the contract moves the Task ---------------------------------


def state_for(data: dict[str, Any]) -> mapping.TaskState:
    return mapping.new_state("task-1", submit(as_json(referral_task(data))), NOW)


def update(sequence: int, status: Status, business: str, **extra: Any) -> StatusChanged:
    if status in {Status.REJECTED, Status.ON_HOLD, Status.CANCELLED, Status.FAILED}:
        code = extra.pop("reason_code", codes_for(status)[0])
        extra |= {"reason_code": code, "reason": reason(code).en, "reason_ko": reason(code).ko}
    return StatusChanged(
        referral_id="r",
        case_id="case-1",
        sequence=sequence,
        status=status,
        business_status=business,
        occurred_at=NOW + timedelta(minutes=sequence),
        **extra,
    )


REPORT = {
    "services_delivered": [
        {
            "service": "meal_delivery",
            "quantity": 10,
            "unit": "meal",
            "cost_krw": 104000,
            "delivered_units": 10,
            "provider": {"id": "p1", "name": {"ko": "도시락", "en": "Lunch"}},
        },
        {
            "service": "temporary_home_care",
            "quantity": 8,
            "unit": "30min",
            "cost_krw": 104700,
            "delivered_units": 6,
        },
    ],
    "total_krw": 208700,
    "publicly_paid_krw": 200000,
    "self_paid_krw": 8700,
}

# A path through every status of the contract (each a legal move).
PATHS = {
    "completed": [
        (Status.RECEIVED, "received", {}),
        (Status.RECEIVED, "triaged", {"details": {"centre_id": "songpa", "fee_support": "full"}}),
        (Status.ACCEPTED, "reviewed", {}),
        (Status.IN_PROGRESS, "services-ordered", {}),
        (Status.ON_HOLD, "readmitted", {"reason_code": "readmitted"}),
        (Status.IN_PROGRESS, "resumed", {}),
        (Status.COMPLETED, "closed", {"details": {"outcome_report": REPORT}}),
    ],
    "rejected": [(Status.REJECTED, "missing-consent", {"reason_code": "missing-consent"})],
    "cancelled": [
        (Status.RECEIVED, "received", {}),
        (Status.CANCELLED, "cancelled-by-hospital", {"reason_code": "cancelled-by-hospital"}),
    ],
    "failed": [
        (Status.RECEIVED, "received", {}),
        (Status.ACCEPTED, "reviewed", {}),
        (Status.FAILED, "cap-exhausted", {"reason_code": "cap-exhausted"}),
    ],
}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_every_status_moves_the_task(data: dict[str, Any], name: str) -> None:
    steps = PATHS[name]
    assert check_path(s for s, _, _ in steps) == []
    state = state_for(data)
    assert Task.model_validate(mapping.task_resource(state)).status == "requested"
    for sequence, (status, business, extra) in enumerate(steps, start=1):
        applied = mapping.apply_update(
            state, update(sequence, status, business, **dict(extra)), NOW
        )
        assert applied.changed
        assert not applied.gap
        state = applied.state
        resource = mapping.task_resource(state)
        task = Task.model_validate(resource)  # every step is a valid FHIR Task
        assert task.status == status.value
        assert resource["businessStatus"]["coding"][0]["code"] == business
        if status in {Status.REJECTED, Status.ON_HOLD, Status.CANCELLED, Status.FAILED}:
            code = extra["reason_code"]
            assert resource["statusReason"]["coding"][0] == {
                "system": codes.STATUS_REASON_SYSTEM,
                "code": code,
                "display": reason(code).en,
            }
            assert resource["statusReason"]["text"] == reason(code).ko
        else:
            assert "statusReason" not in resource
        assert ("output" in resource) == (status == Status.COMPLETED)
    assert state.version == len(steps) + 1


def test_completion_carries_the_outcome_report(data: dict[str, Any]) -> None:
    state = state_for(data)
    for sequence, (status, business, extra) in enumerate(PATHS["completed"], start=1):
        state = mapping.apply_update(
            state, update(sequence, status, business, **dict(extra)), NOW
        ).state
    resource = mapping.task_resource(state)
    assert resource["owner"]["identifier"]["value"] == "songpa"
    outputs = {
        (o["type"]["coding"][-1]["code"], o["type"]["coding"][-2]["code"]): o
        for o in resource["output"]
        if len(o["type"]["coding"]) > 1
    }
    delivered = outputs[("temporary_home_care", "service-delivered")]
    assert delivered["valueQuantity"] == {"value": 6, "unit": "30min"}
    assert outputs[("meal_delivery", "service-cost")]["valueMoney"] == {
        "value": 104000,
        "currency": "KRW",
    }
    money = {o["type"]["text"]: o.get("valueMoney") for o in resource["output"]}
    assert money["district-paid"] == {"value": 200000, "currency": "KRW"}
    assert money["self-paid"] == {"value": 8700, "currency": "KRW"}
    assert mapping.report_from_outputs(resource) == REPORT
    assert Task.model_validate(resource).executionPeriod.end is not None


def test_a_repeat_changes_nothing_and_a_gap_is_reported(data: dict[str, Any]) -> None:
    state = mapping.apply_update(state_for(data), update(1, Status.RECEIVED, "received"), NOW).state
    again = mapping.apply_update(state, update(1, Status.RECEIVED, "received"), NOW)
    assert not again.changed
    assert again.state == state
    jumped = mapping.apply_update(state, update(3, Status.ACCEPTED, "reviewed"), NOW)
    assert jumped.changed
    assert jumped.gap
    assert jumped.state.sequence == 3


def test_the_task_served_keeps_no_personal_data(data: dict[str, Any]) -> None:
    text = json.dumps(mapping.task_resource(state_for(data)), ensure_ascii=False)
    for personal in (
        data["patient"]["name"],
        data["patient"]["phone"],
        data["patient"]["address"]["street"],
        data["social_worker"]["name"],
        data["care_precautions"],
    ):
        assert personal not in text


# --- in: a PUT of the Task ------------------------------------------------------------


def put(state: mapping.TaskState, data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = as_json(referral_task(data))
    body.update(changes)
    return mapping.parse(body, "Task")


def test_the_hospital_cancels(data: dict[str, Any]) -> None:
    state = state_for(data)
    body = put(
        state,
        data,
        status="cancelled",
        statusReason={
            "coding": [{"system": codes.STATUS_REASON_SYSTEM, "code": "transferred"}],
            "text": "moved to another hospital",
        },
    )
    events, after = mapping.hospital_changes(body, state, NOW)
    assert events == [
        ReferralCancelled(
            referral_id=data["referral_id"],
            hospital_id=HOSPITAL,
            cancelled_at=NOW,
            reason_code="transferred",
            reason="moved to another hospital",
        )
    ]
    assert after.cancel_requested
    assert after.version == state.version + 1
    # The same PUT again sends nothing more.
    assert mapping.hospital_changes(body, after, NOW)[0] == []


def test_the_hospital_corrects_and_discharges(data: dict[str, Any]) -> None:
    state = state_for(data)
    new_date = (NOW + timedelta(days=9)).date().isoformat()
    body = put(state, data)
    body["input"][1]["valueDate"] = new_date
    body["input"].append(
        {
            "type": {"coding": [{"system": codes.INPUT_SYSTEM, "code": "discharged-at"}]},
            "valueDateTime": NOW.isoformat(),
        }
    )
    body["note"] = [{"text": "낙상 위험"}]
    events, after = mapping.hospital_changes(body, state, NOW)
    assert events == [
        ReferralUpdated(
            referral_id=data["referral_id"],
            hospital_id=HOSPITAL,
            updated_at=NOW,
            expected_discharge_date=new_date,
            care_precautions="낙상 위험",
        ),
        PatientDischarged(referral_id=data["referral_id"], hospital_id=HOSPITAL, discharged_at=NOW),
    ]
    assert after.discharged_at == NOW
    assert mapping.hospital_changes(body, after, NOW)[0] == []


def test_the_hospital_cannot_set_carelinks_statuses(data: dict[str, Any]) -> None:
    state = state_for(data)
    with pytest.raises(FhirError) as error:
        mapping.hospital_changes(put(state, data, status="completed"), state, NOW)
    assert set(problems(error)) == {"Task.status"}
    with pytest.raises(FhirError) as error:
        mapping.hospital_changes(
            put(state, data, identifier=[{"system": "https://ehr.example/referral", "value": "x"}]),
            state,
            NOW,
        )
    assert set(problems(error)) == {"Task.identifier"}


def test_the_code_systems_are_valid_fhir() -> None:
    systems = mapping_code_systems()
    assert set(systems) >= {"service", "business-status", "status-reason"}
    for resource in systems.values():
        CodeSystem.model_validate(resource)
    reasons = {c["code"] for c in systems["status-reason"]["concept"]}
    assert reasons >= {"missing-consent", "readmitted", "transferred", "cap-exhausted"}


def mapping_code_systems() -> dict[str, dict[str, Any]]:
    return codes.code_systems()


def test_a_bundle_must_be_a_transaction_with_one_task(data: dict[str, Any]) -> None:
    bundle = as_json(referral_bundle(data))
    with pytest.raises(FhirError):
        mapping.References.bundle({**bundle, "type": "batch"})
    two = {**bundle, "entry": bundle["entry"] + bundle["entry"][-1:]}
    with pytest.raises(FhirError):
        mapping.References.bundle(Bundle.model_validate(two).model_dump(mode="json"))


def test_putting_back_the_task_as_served_changes_nothing(data: dict[str, Any]) -> None:
    state = state_for(data)
    served = mapping.parse(mapping.task_resource(state), "Task")
    assert mapping.hospital_changes(served, state, NOW) == ([], state)
