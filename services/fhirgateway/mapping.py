"""FHIR ↔ hospital contract v1, both ways, pure (README "FHIR gateway" has the table).

In: a Task (focus a ServiceRequest, for a Patient, requester the hospital's
Organization, a Consent; contained, or entries of a transaction Bundle) becomes
`carelink.referral.submitted.v1`; a later PUT of the Task becomes `updated`,
`cancelled` or `patient.discharged`. Every resource is parsed by `fhir.resources`
(R4B models: Task, ServiceRequest, Patient, Consent … are R4's) and the result is
validated by the contract's own models, so a hospital using FHIR gets exactly the
checks a hospital writing Kafka records gets, with FHIRPaths in the errors.

Out: each `carelink.referral.status-changed.v1` moves the Task (`apply_update`) and
`task_resource` renders it: status, businessStatus, statusReason and, on completion,
output carrying the outcome report. The gateway keeps no personal data: the Task it
serves has no Patient, no social worker, no care precautions (the hospital's EHR has
them); only the referral's identifiers, services, dates it needs for updates and the
feed's status.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import BaseModel, ValidationError

from contracts.hospital_v1 import (
    PatientDischarged,
    ReferralCancelled,
    ReferralSubmitted,
    ReferralUpdated,
    StatusChanged,
)
from contracts.reasons import REASONS
from services.fhirgateway import codes
from services.fhirgateway.outcomes import Problem, invalid, model_problems, single

Resource = dict[str, Any]
# The Task's status from its creation until carelink's first update.
REQUESTED = "requested"
GENDERS = {"female": "F", "male": "M", "other": "X", "unknown": "X"}
GENDER_OUT = {"F": "female", "M": "male", "X": "other"}


def parse(body: Any, expected: str | None = None) -> Resource:
    """Validate `body` with the model library and return it as FHIR JSON (a dict).

    `expected` is the resourceType the endpoint takes (None: any)."""
    if not isinstance(body, dict):
        raise single(400, "structure", "the body must be a FHIR resource (a JSON object)")
    kind = body.get("resourceType")
    if not isinstance(kind, str) or not kind:
        raise single(400, "structure", "resourceType is required", "resourceType")
    if expected is not None and kind != expected:
        raise single(400, "structure", f"expected a {expected}, not a {kind}", "resourceType")
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError):
        raise single(
            400, "not-supported", f"{kind} is not a FHIR R4 resource type", "resourceType"
        ) from None
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        raise invalid(model_problems(kind, exc)) from None
    result: Resource = json.loads(parsed.model_dump_json())
    return result


# --- in: resolving references --------------------------------------------------------


@dataclass(frozen=True)
class Found:
    resource: Resource
    path: str  # where it sits in the request, for errors


class References:
    """References of one request: `#id` for contained resources, the entries' fullUrl
    (and `Type/id`) for a transaction Bundle."""

    def __init__(self, resources: Mapping[str, Found]) -> None:
        self._by_ref = dict(resources)

    @classmethod
    def contained(cls, task: Resource) -> References:
        found = {
            f"#{r['id']}": Found(r, f"Task.contained[{i}]")
            for i, r in enumerate(task.get("contained", []))
            if r.get("id")
        }
        return cls(found)

    @classmethod
    def bundle(cls, bundle: Resource) -> tuple[Resource, str, References]:
        """The Task of a transaction Bundle, its path, and the Bundle's references."""
        if bundle.get("type") != "transaction":
            raise single(
                422, "invalid", "a Bundle posted to [base] must be a transaction", "Bundle.type"
            )
        found: dict[str, Found] = {}
        tasks: list[tuple[Resource, str]] = []
        for index, entry in enumerate(bundle.get("entry", [])):
            resource = entry.get("resource")
            path = f"Bundle.entry[{index}].resource"
            if resource is None:
                raise single(
                    422, "required", "every entry needs a resource", f"Bundle.entry[{index}]"
                )
            method = (entry.get("request") or {}).get("method")
            if method != "POST":
                raise single(
                    422,
                    "not-supported",
                    "only POST entries are supported (the resources of one referral)",
                    f"Bundle.entry[{index}].request.method",
                )
            here = Found(resource, path)
            if entry.get("fullUrl"):
                found[entry["fullUrl"]] = here
            if resource.get("id"):
                found[f"{resource['resourceType']}/{resource['id']}"] = here
            if resource["resourceType"] == "Task":
                tasks.append((resource, path))
        if len(tasks) != 1:
            raise single(422, "invalid", "the Bundle must hold exactly one Task", "Bundle.entry")
        task, path = tasks[0]
        return task, path, cls(found)

    def resolve(self, reference: Any, kind: str, path: str) -> Found:
        ref = (reference or {}).get("reference") if isinstance(reference, dict) else None
        if not ref:
            raise invalid([Problem(path, f"a reference to the {kind} is required")])
        found = self._by_ref.get(ref)
        if found is None:
            raise invalid(
                [Problem(path, f"{ref} is not in the request (contained, or a Bundle entry)")]
            )
        if found.resource.get("resourceType") != kind:
            raise invalid([Problem(path, f"must reference a {kind}")])
        return found

    def only(self, kind: str, where: str) -> Found:
        matches = [f for f in self._by_ref.values() if f.resource.get("resourceType") == kind]
        unique = {id(f.resource): f for f in matches}
        if len(unique) != 1:
            raise invalid([Problem(where, f"exactly one {kind} is required")])
        return next(iter(unique.values()))


# --- in: the Task and its resources → contract events --------------------------------


@dataclass(frozen=True)
class Submission:
    """What POST Task gives: the contract event and the facts the gateway keeps."""

    identifier_system: str
    event: ReferralSubmitted

    @property
    def fingerprint(self) -> str:
        """Tells a retried POST (same content) from a conflicting one; no data kept."""
        data = self.event.model_dump(mode="json")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def referral_identifier(task: Resource, root: str = "Task") -> tuple[str, str]:
    """The hospital's (system, referral id): the first identifier with both."""
    for identifier in task.get("identifier", []):
        system, value = identifier.get("system"), identifier.get("value")
        if system and value and system != codes.CASE_SYSTEM:
            if len(value) > 64:
                raise invalid(
                    [Problem(f"{root}.identifier", "the referral id is 1..64 characters")]
                )
            return system, value
    raise invalid(
        [
            Problem(
                f"{root}.identifier",
                "an identifier with system and value (the referral id) is required",
            )
        ]
    )


def requester_hospital(task: Resource, refs: References, root: str) -> str | None:
    """The hospital id the Task's requester names (HOSPITAL_SYSTEM identifier), from a
    logical reference or the referenced Organization; None when it names none."""
    requester = task.get("requester") or {}
    identifiers = [requester["identifier"]] if requester.get("identifier") else []
    if requester.get("reference"):
        found = refs.resolve(requester, "Organization", f"{root}.requester")
        identifiers += found.resource.get("identifier", [])
    for identifier in identifiers:
        if identifier.get("system") == codes.HOSPITAL_SYSTEM and identifier.get("value"):
            return str(identifier["value"])
    return None


def submission(
    task: Resource, refs: References, *, hospital_id: str, root: str = "Task"
) -> Submission:
    """The referral a new Task makes, validated by the contract's model.

    Raises FhirError: 422 with every problem found (FHIRPaths), 403 when the requester
    is another hospital than the caller's."""
    problems: list[Problem] = []
    if task.get("status") != REQUESTED:
        problems.append(Problem(f"{root}.status", "a new referral's Task is 'requested'"))
    if task.get("intent") != "order":
        problems.append(Problem(f"{root}.intent", "a referral's Task intent is 'order'"))
    requester = requester_hospital(task, refs, root)
    if requester is None:
        problems.append(
            Problem(
                f"{root}.requester",
                f"the requester Organization needs an identifier of {codes.HOSPITAL_SYSTEM}",
            )
        )
    elif requester != hospital_id:
        raise single(
            403,
            "forbidden",
            "the requester is not the hospital this token is for",
            f"{root}.requester",
        )
    if problems:
        raise invalid(problems)
    system, referral_id = referral_identifier(task, root)
    service_request = refs.resolve(task.get("focus"), "ServiceRequest", f"{root}.focus")
    patient = refs.resolve(task.get("for"), "Patient", f"{root}.for")
    consent = refs.only("Consent", root)
    worker = refs.resolve(
        service_request.resource.get("requester"),
        "Practitioner",
        f"{service_request.path}.requester",
    )
    inputs = task_inputs(task, root)
    paths: dict[str, str] = {}

    def at(contract_field: str, fhir: str) -> str:
        """Remember where the contract field (dotted) comes from; its key in `data`."""
        paths[contract_field] = fhir
        return contract_field.rpartition(".")[2]

    data: dict[str, Any] = {
        at("referral_id", f"{root}.identifier"): referral_id,
        "hospital_id": hospital_id,
        at("submitted_at", f"{root}.authoredOn"): task.get("authoredOn"),
        "social_worker": _social_worker(worker, at),
        "patient": _patient(patient, inputs, at),
        at("admission_date", inputs.path("admission-date")): inputs.value("admission-date"),
        at("expected_discharge_date", inputs.path("expected-discharge-date")): inputs.value(
            "expected-discharge-date"
        ),
        at("mobility", inputs.path("mobility")): inputs.value("mobility"),
        at("requested_services", f"{service_request.path}.orderDetail"): _services(service_request),
        at("care_precautions", f"{root}.note"): notes_text(task),
        "consent": _consent(consent, at),
        at("priority", f"{root}.priority"): task.get("priority", "routine"),
    }
    if inputs.has("do-not-contact"):
        data[at("do_not_contact", inputs.path("do-not-contact"))] = inputs.value("do-not-contact")
    elif _contact_prohibited(service_request):
        data[at("do_not_contact", f"{service_request.path}.orderDetail")] = True
    event = validate_contract(ReferralSubmitted, data, paths)
    return Submission(system, event)


def _social_worker(worker: Found, at: Callable[[str, str], str]) -> dict[str, Any]:
    resource = worker.resource
    return {
        at("social_worker.name", f"{worker.path}.name"): human_name(resource.get("name", [])),
        at("social_worker.phone", f"{worker.path}.telecom"): telecom(resource, "phone"),
        at("social_worker.email", f"{worker.path}.telecom"): telecom(resource, "email"),
    }


def _patient(patient: Found, inputs: Inputs, at: Callable[[str, str], str]) -> dict[str, Any]:
    resource, path = patient.resource, patient.path
    address = (resource.get("address") or [{}])[0]
    lines = address.get("line", [])
    a = f"{path}.address[0]"
    gender = resource.get("gender")
    return {
        at("patient.name", f"{path}.name"): human_name(resource.get("name", [])),
        at("patient.birth_date", f"{path}.birthDate"): resource.get("birthDate"),
        at("patient.sex", f"{path}.gender"): GENDERS.get(gender, gender) if gender else None,
        at("patient.phone", f"{path}.telecom"): telecom(resource, "phone"),
        at("patient.address", f"{path}.address"): {
            at("patient.address.district", f"{a}.district"): address.get("district"),
            at("patient.address.dong", f"{a}.line[0]"): lines[0] if len(lines) > 0 else None,
            at("patient.address.street", f"{a}.line[1]"): lines[1] if len(lines) > 1 else None,
            at("patient.address.detail", f"{a}.line[2]"): lines[2] if len(lines) > 2 else None,
        },
        **{
            at(f"patient.{name.replace('-', '_')}", inputs.path(name)): inputs.value(name)
            for name in (
                "household-size",
                "monthly-household-income-krw",
                "registered-disability",
                "lives-alone",
                "has-family-caregiver",
                "uses-public-care",
            )
        },
    }


def _consent(consent: Found, at: Callable[[str, str], str]) -> dict[str, Any]:
    resource, path = consent.resource, consent.path
    methods = [
        (i, coding.get("code"))
        for i, concept in enumerate(resource.get("category", []))
        for coding in concept.get("coding", [])
        if coding.get("system") == codes.CONSENT_METHOD_SYSTEM
    ]
    return {
        # Only an active Consent is consent given; intake rejects the rest (missing-consent).
        at("consent.given", f"{path}.status"): resource.get("status") == "active",
        at("consent.obtained_at", f"{path}.dateTime"): resource.get("dateTime"),
        at("consent.method", f"{path}.category"): methods[0][1] if methods else None,
    }


def _services(service_request: Found) -> list[str | None]:
    return [
        coding.get("code")
        for detail in service_request.resource.get("orderDetail", [])
        for coding in detail.get("coding", [])
        if coding.get("system") == codes.SERVICE_SYSTEM
    ]


def _contact_prohibited(service_request: Found) -> bool:
    """The SDOHCC form of do-not-contact: an orderDetail coded contacting-subject-prohibited."""
    return any(
        coding.get("system") == codes.SDOHCC_SYSTEM
        and coding.get("code") == codes.CONTACTING_SUBJECT_PROHIBITED
        for detail in service_request.resource.get("orderDetail", [])
        for coding in detail.get("coding", [])
    )


def human_name(names: Sequence[Mapping[str, Any]]) -> str | None:
    """The first name's text, else family and given as Koreans write them (no space)."""
    if not names:
        return None
    name = names[0]
    if name.get("text"):
        return str(name["text"])
    parts = [name.get("family", ""), *name.get("given", [])]
    joined = "".join(p for p in parts if p)
    return joined or None


def telecom(resource: Mapping[str, Any], kind: str) -> str | None:
    for point in resource.get("telecom", []):
        if point.get("system") == kind and point.get("value"):
            return str(point["value"])
    return None


def notes_text(task: Mapping[str, Any]) -> str:
    return "\n".join(note.get("text", "") for note in task.get("note", []) if note.get("text"))


_VALUE_KEYS = (
    "valueDate",
    "valueDateTime",
    "valueCode",
    "valueInteger",
    "valueBoolean",
    "valueString",
)


@dataclass(frozen=True)
class Inputs:
    """Task.input by carelink input code (codes.INPUT_SYSTEM)."""

    root: str
    values: Mapping[str, tuple[int, Any]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.values

    def value(self, name: str) -> Any:
        return self.values[name][1] if name in self.values else None

    def path(self, name: str) -> str:
        if name not in self.values:
            return f"{self.root}.input"  # missing: the contract error says which field
        index, _ = self.values[name]
        return f"{self.root}.input[{index}]"


def task_inputs(task: Resource, root: str = "Task") -> Inputs:
    values: dict[str, tuple[int, Any]] = {}
    for index, item in enumerate(task.get("input", [])):
        for coding in (item.get("type") or {}).get("coding", []):
            if coding.get("system") == codes.INPUT_SYSTEM and coding.get("code") in codes.INPUTS:
                value = next((item[k] for k in _VALUE_KEYS if k in item), None)
                values[coding["code"]] = (index, value)
    return Inputs(root, values)


def validate_contract(
    model: type[BaseModel], data: Mapping[str, Any], paths: Mapping[str, str]
) -> Any:
    """Validate through the contract's model; its errors named by FHIRPath where known."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
            dotted = ".".join(loc)
            # The longest mapped prefix: patient.address.district → the address line.
            fhir = next(
                (
                    paths[".".join(loc[:n])]
                    for n in range(len(loc), 0, -1)
                    if ".".join(loc[:n]) in paths
                ),
                dotted,
            )
            label = f" ({dotted})" if dotted else ""
            problems.append(Problem(fhir, f"{error['msg'].removeprefix('Value error, ')}{label}"))
        raise invalid(problems) from None


# --- in: a PUT of the Task → updated / cancelled / discharged -------------------------


@dataclass(frozen=True)
class TaskState:
    """One Task as the gateway keeps it (no personal data)."""

    id: str
    hospital_id: str
    referral_id: str
    identifier_system: str
    services: tuple[str, ...]
    priority: str
    authored_on: datetime
    expected_discharge_date: date
    do_not_contact: bool
    care_precautions_sha256: str
    last_updated: datetime
    version: int = 1
    discharged_at: datetime | None = None
    cancel_requested: bool = False
    status: str = REQUESTED
    business_status: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    reason_ko: str | None = None
    sequence: int = 0
    case_id: str | None = None
    centre_id: str | None = None
    outcome_report: Mapping[str, Any] | None = None
    completed_at: datetime | None = None


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_state(task_id: str, submitted: Submission, now: datetime) -> TaskState:
    event = submitted.event
    return TaskState(
        id=task_id,
        hospital_id=event.hospital_id,
        referral_id=event.referral_id,
        identifier_system=submitted.identifier_system,
        services=tuple(s.value for s in event.requested_services),
        priority=event.priority,
        authored_on=event.submitted_at,
        expected_discharge_date=event.expected_discharge_date,
        do_not_contact=event.do_not_contact,
        care_precautions_sha256=sha256_text(event.care_precautions),
        last_updated=now,
    )


HospitalChange = ReferralUpdated | ReferralCancelled | PatientDischarged


TERMINAL = frozenset({"rejected", "cancelled", "completed", "failed"})


def hospital_changes(
    task: Resource, state: TaskState, now: datetime
) -> tuple[list[HospitalChange], TaskState]:
    """What a PUT of the Task asks: the contract events to publish and the state after.

    The hospital may cancel (status `cancelled`, statusReason a cancel reason code),
    correct the expected discharge date, priority, do-not-contact and care precautions
    (Task.note), and say the patient left (input `discharged-at`). Every other status
    is carelink's to set."""
    system, referral_id = referral_identifier(task)
    if (system, referral_id) != (state.identifier_system, state.referral_id):
        raise invalid([Problem("Task.identifier", "the identifier of a Task cannot change")])
    base = {"referral_id": state.referral_id, "hospital_id": state.hospital_id}
    inputs = task_inputs(task)
    events: list[HospitalChange] = []
    after = state
    status = task.get("status")
    if status == "cancelled" and state.status != "cancelled" and not state.cancel_requested:
        if state.status in TERMINAL:
            raise single(
                409,
                "conflict",
                f"the Task is {state.status}: it can no longer be cancelled",
                "Task.status",
            )
        code = (
            _coded(task.get("statusReason"), codes.STATUS_REASON_SYSTEM) or "cancelled-by-hospital"
        )
        cancelled = validate_contract(
            ReferralCancelled,
            {
                **base,
                "cancelled_at": now,
                "reason_code": code,
                "reason": (task.get("statusReason") or {}).get("text", ""),
            },
            {"reason_code": "Task.statusReason", "reason": "Task.statusReason.text"},
        )
        events.append(cancelled)
        after = replace(after, cancel_requested=True)
    elif status not in {state.status, "cancelled"}:
        raise invalid(
            [
                Problem(
                    "Task.status",
                    f"carelink sets the status; the hospital may only cancel (it is {state.status})",
                )
            ]
        )
    changes: dict[str, Any] = {}
    paths: dict[str, str] = {}
    if inputs.has("expected-discharge-date"):
        raw = inputs.value("expected-discharge-date")
        if raw != state.expected_discharge_date.isoformat():
            changes["expected_discharge_date"] = raw
            paths["expected_discharge_date"] = inputs.path("expected-discharge-date")
    if task.get("priority", state.priority) != state.priority:
        changes["priority"] = task.get("priority")
        paths["priority"] = "Task.priority"
    if inputs.has("do-not-contact") and inputs.value("do-not-contact") != state.do_not_contact:
        changes["do_not_contact"] = inputs.value("do-not-contact")
        paths["do_not_contact"] = inputs.path("do-not-contact")
    # The Task the gateway serves has no note (precautions are the EHR's): a PUT without
    # one leaves them as they are, a PUT with one says what they are now.
    notes = notes_text(task)
    if "note" in task and sha256_text(notes) != state.care_precautions_sha256:
        changes["care_precautions"] = notes
        paths["care_precautions"] = "Task.note"
    if changes:
        updated = validate_contract(ReferralUpdated, {**base, "updated_at": now, **changes}, paths)
        events.append(updated)
        after = replace(
            after,
            expected_discharge_date=updated.expected_discharge_date
            or after.expected_discharge_date,
            priority=updated.priority or after.priority,
            do_not_contact=(
                updated.do_not_contact
                if updated.do_not_contact is not None
                else after.do_not_contact
            ),
            care_precautions_sha256=(
                sha256_text(notes) if "note" in task else after.care_precautions_sha256
            ),
        )
    if inputs.has("discharged-at") and state.discharged_at is None:
        discharged = validate_contract(
            PatientDischarged,
            {**base, "discharged_at": inputs.value("discharged-at")},
            {"discharged_at": inputs.path("discharged-at")},
        )
        events.append(discharged)
        after = replace(after, discharged_at=discharged.discharged_at)
    if events:
        after = replace(after, last_updated=now, version=after.version + 1)
    return events, after


def _coded(concept: Any, system: str) -> str | None:
    for coding in (concept or {}).get("coding", []):
        if coding.get("system") == system and coding.get("code"):
            return str(coding["code"])
    return None


# --- out: a status update moves the Task ----------------------------------------------


@dataclass(frozen=True)
class Applied:
    state: TaskState
    changed: bool  # False: a repeat (same or older sequence), nothing to notify
    gap: bool  # True: one or more updates are missing before this one


def apply_update(state: TaskState, update: StatusChanged, now: datetime) -> Applied:
    """The Task after one update of the hospital's feed, in sequence order.

    A sequence at or below the last one applied is a repeat (at-least-once delivery) and
    changes nothing; one beyond the next is applied and reported as a gap (an update is
    missing: retention ran out while the gateway was stopped)."""
    if update.sequence <= state.sequence:
        return Applied(state, changed=False, gap=False)
    gap = update.sequence != state.sequence + 1
    details = update.details
    report = details.get("outcome_report") if update.status == "completed" else None
    state = replace(
        state,
        status=update.status.value,
        business_status=update.business_status,
        reason_code=update.reason_code,
        reason=update.reason,
        reason_ko=update.reason_ko,
        sequence=update.sequence,
        case_id=update.case_id,
        centre_id=details.get("centre_id") or state.centre_id,
        outcome_report=report if isinstance(report, dict) else state.outcome_report,
        completed_at=update.occurred_at if update.status == "completed" else state.completed_at,
        last_updated=now,
        version=state.version + 1,
    )
    return Applied(state, changed=True, gap=gap)


def task_resource(state: TaskState) -> Resource:
    """The Task the gateway serves for `state` (FHIR R4 JSON)."""
    task: Resource = {
        "resourceType": "Task",
        "id": state.id,
        "meta": {"versionId": str(state.version), "lastUpdated": state.last_updated.isoformat()},
        "identifier": [{"system": state.identifier_system, "value": state.referral_id}],
        "status": state.status,
        "intent": "order",
        "priority": state.priority,
        "code": {"coding": [{"system": codes.TASK_CODE_SYSTEM, "code": "fulfill"}]},
        "authoredOn": state.authored_on.isoformat(),
        "lastModified": state.last_updated.isoformat(),
        "requester": {"identifier": {"system": codes.HOSPITAL_SYSTEM, "value": state.hospital_id}},
        "input": [
            *(
                {"type": _input_type("requested-service"), "valueCodeableConcept": _service(s)}
                for s in state.services
            ),
            {
                "type": _input_type("expected-discharge-date"),
                "valueDate": state.expected_discharge_date.isoformat(),
            },
        ],
    }
    if state.discharged_at is not None:
        task["input"].append(
            {"type": _input_type("discharged-at"), "valueDateTime": state.discharged_at.isoformat()}
        )
    if state.case_id:
        task["identifier"].append(
            {"use": "secondary", "system": codes.CASE_SYSTEM, "value": state.case_id}
        )
    if state.centre_id:
        task["owner"] = {"identifier": {"system": codes.CENTRE_SYSTEM, "value": state.centre_id}}
    if state.business_status:
        task["businessStatus"] = {
            "coding": [
                {
                    "system": _business_system(state.business_status),
                    "code": state.business_status,
                }
            ],
            "text": state.business_status,
        }
    if state.reason_code:
        reason: Resource = {
            "coding": [{"system": codes.STATUS_REASON_SYSTEM, "code": state.reason_code}]
        }
        if state.reason:
            reason["coding"][0]["display"] = state.reason
        # The Korean text for the social worker reading the EHR; English in the coding.
        # SDOHCC requires statusReason.text, so the code stands in when there is no text.
        reason["text"] = state.reason_ko or state.reason or state.reason_code
        task["statusReason"] = reason
    if state.status == "completed" and state.outcome_report is not None:
        task["output"] = outcome_outputs(state.outcome_report)
        if state.completed_at is not None:
            task["executionPeriod"] = {"end": state.completed_at.isoformat()}
    return task


def _service(code: str) -> Resource:
    coding = [
        {"system": codes.SERVICE_SYSTEM, "code": code, "display": codes.SERVICES.get(code, code)}
    ]
    category = codes.SDOH_CATEGORY.get(code)  # type: ignore[call-overload]
    if category is not None:
        coding.append({"system": codes.SDOHCC_SYSTEM, "code": category})
    return {"coding": coding}


def _input_type(code: str) -> Resource:
    return {"coding": [{"system": codes.INPUT_SYSTEM, "code": code}], "text": code}


def _business_system(code: str) -> str:
    if code in codes.BUSINESS_STATUSES:
        return codes.BUSINESS_STATUS_SYSTEM
    # On rejected, on-hold, cancelled, failed the step is the reason code itself.
    return codes.STATUS_REASON_SYSTEM if code in REASONS else codes.BUSINESS_STATUS_SYSTEM


def _money(amount: Any) -> Resource:
    return {"value": int(amount or 0), "currency": "KRW"}


def _output_type(code: str, service: str | None = None) -> Resource:
    # Not SDOHCC `resulting-activity`: the guide types with it only outputs whose value is
    # a Reference(SDOHCC Procedure) or a US Core procedure code, and carelink has neither
    # (its services have no such code; units and costs are a Quantity and Money).
    coding = [{"system": codes.OUTPUT_SYSTEM, "code": code}]
    if service is not None:
        coding.append({"system": codes.SERVICE_SYSTEM, "code": service})
    return {"coding": coding, "text": f"{code} {service}" if service else code}


def outcome_outputs(report: Mapping[str, Any]) -> list[Resource]:
    """Task.output on completion: per service as delivered its units and cost, the totals
    and who paid, and the whole outcome report as a JSON attachment."""
    outputs: list[Resource] = []
    for line in report.get("services_delivered", []):
        service = str(line.get("service"))
        outputs.append(
            {
                "type": _output_type("service-delivered", service),
                "valueQuantity": {
                    "value": int(line.get("delivered_units") or 0),
                    "unit": str(line.get("unit", "")),
                },
            }
        )
        outputs.append(
            {
                "type": _output_type("service-cost", service),
                "valueMoney": _money(line.get("cost_krw")),
            }
        )
    outputs.append(
        {"type": _output_type("total-cost"), "valueMoney": _money(report.get("total_krw"))}
    )
    outputs.append(
        {
            "type": _output_type("district-paid"),
            "valueMoney": _money(report.get("publicly_paid_krw")),
        }
    )
    outputs.append(
        {"type": _output_type("self-paid"), "valueMoney": _money(report.get("self_paid_krw"))}
    )
    document = json.dumps(report, ensure_ascii=False, sort_keys=True).encode()
    outputs.append(
        {
            "type": _output_type("outcome-report"),
            "valueAttachment": {
                "contentType": "application/json",
                "data": base64.b64encode(document).decode(),
                "title": "carelink outcome report",
            },
        }
    )
    return outputs


def report_from_outputs(task: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outcome report a completed Task carries (what an EHR would read back)."""
    for output in task.get("output", []):
        if _coded(output.get("type"), codes.OUTPUT_SYSTEM) == "outcome-report":
            data: dict[str, Any] = json.loads(base64.b64decode(output["valueAttachment"]["data"]))
            return data
    return None
