"""The referral form against the contract, field by field, parametrised from the
model's own JSON Schema: every field of `carelink.referral.submitted.v1` is on the
form; the HTML constraints the browser enforces are the schema's; and for each rule a
broken value is refused by the server (the contract's model) with the very message the
browser shows for it (`FormField.messages`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.hospital_v1 import ReferralSubmitted
from services.portal import form, labels
from services.portal.form import FIELDS, FormField
from services.tools.simulators.referrals import FakeHospital

HOSPITAL = "police-hospital"
NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
BY_NAME = {f.name: f for f in FIELDS}


def _leaves(schema: dict[str, Any], defs: dict[str, Any], prefix: str = "") -> set[str]:
    found: set[str] = set()
    for key, prop in schema["properties"].items():
        ref = prop.get("$ref")
        if ref:
            found |= _leaves(defs[ref.rsplit("/", 1)[1]], defs, f"{prefix}{key}.")
        else:
            found.add(f"{prefix}{key}")
    return found


def _data() -> dict[str, Any]:
    data = FakeHospital(HOSPITAL, seed=7).submission(referral_id="P-1")
    # A datetime-local field holds minutes, as the social worker reads the clock.
    data["consent"]["obtained_at"] = "2026-12-02T10:30:00+09:00"
    return data


def _valid() -> dict[str, list[str]]:
    return form.form_of(_data())


def _check(values: dict[str, list[str]]) -> form.Checked:
    return form.check(values, hospital_id=HOSPITAL, submitted_at=NOW)


def test_every_field_of_the_contract_is_on_the_form_or_set_by_the_portal() -> None:
    schema = ReferralSubmitted.model_json_schema()
    contract = _leaves(schema, schema["$defs"])
    assert contract == {f.name for f in FIELDS} | form.SET_BY_PORTAL
    assert all(f.label for f in FIELDS)


def test_a_complete_form_is_exactly_the_submission() -> None:
    data = _data()
    checked = _check(form.form_of(data))
    assert checked.errors == {}
    assert checked.submission is not None
    expected = ReferralSubmitted.model_validate(
        {**data, "submitted_at": NOW.isoformat(), "hospital_id": HOSPITAL}
    )
    assert checked.submission == expected


def test_the_consent_time_is_read_as_seoul_time() -> None:
    values = _valid()
    values["consent.obtained_at"] = ["2026-12-02T10:30"]
    checked = _check(values)
    assert checked.submission is not None
    assert checked.submission.consent.obtained_at.isoformat() == "2026-12-02T10:30:00+09:00"


REQUIRED = [f for f in FIELDS if f.required]


@pytest.mark.parametrize("field", REQUIRED, ids=lambda f: f.name)
def test_a_required_field_left_blank_is_refused_with_the_browsers_message(field: FormField) -> None:
    values = _valid()
    values[field.name] = []
    checked = _check(values)
    assert checked.submission is None
    assert set(checked.errors) == {field.name}
    if field.kind == "choices":
        assert checked.errors[field.name] == field.messages["tooFewItems"]
    else:
        assert field.attrs["required"] == "required"
        assert checked.errors[field.name] == field.messages["valueMissing"] == labels.REQUIRED


OPTIONAL = [f for f in FIELDS if not f.required]


@pytest.mark.parametrize("field", OPTIONAL, ids=lambda f: f.name)
def test_an_optional_field_may_be_left_blank(field: FormField) -> None:
    values = _valid()
    values[field.name] = []
    assert _check(values).errors == {}
    assert "required" not in field.attrs


LONG = [f for f in FIELDS if f.max_length is not None]


@pytest.mark.parametrize("field", LONG, ids=lambda f: f.name)
def test_a_value_over_the_contracts_length_is_refused(field: FormField) -> None:
    assert field.max_length is not None
    assert field.attrs["maxlength"] == str(field.max_length)
    values = _valid()
    values[field.name] = ["가" * field.max_length]
    assert field.name not in _check(values).errors
    values[field.name] = ["가" * (field.max_length + 1)]
    assert _check(values).errors == {field.name: field.messages["tooLong"]}


BOUNDED = [f for f in FIELDS if f.minimum is not None or f.maximum is not None]


@pytest.mark.parametrize("field", BOUNDED, ids=lambda f: f.name)
def test_a_number_out_of_the_contracts_range_is_refused(field: FormField) -> None:
    values = _valid()
    if field.minimum is not None:
        assert field.attrs["min"] == str(field.minimum)
        values[field.name] = [str(field.minimum)]
        assert field.name not in _check(values).errors
        values[field.name] = [str(field.minimum - 1)]
        assert _check(values).errors == {field.name: field.messages["rangeUnderflow"]}
    if field.maximum is not None:
        assert field.attrs["max"] == str(field.maximum)
        values[field.name] = [str(field.maximum + 1)]
        assert _check(values).errors == {field.name: field.messages["rangeOverflow"]}
    values[field.name] = ["12.5"]
    assert _check(values).errors == {field.name: field.messages["badInput"]}


CHOICES = [f for f in FIELDS if f.kind in ("choice", "choices")]


@pytest.mark.parametrize("field", CHOICES, ids=lambda f: f.name)
def test_a_code_the_contract_does_not_list_is_refused(field: FormField) -> None:
    schema = ReferralSubmitted.model_json_schema()
    codes = [code for code, _ in field.options]
    assert all(label for _, label in field.options)
    assert set(codes) <= set(_enums(schema))
    values = _valid()
    values[field.name] = ["not-a-code"]
    assert _check(values).errors == {field.name: labels.message("enum")}


def _enums(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = list(schema.get("enum", []))
        for value in schema.values():
            found += _enums(value)
        return found
    if isinstance(schema, list):
        return [e for item in schema for e in _enums(item)]
    return []


def test_too_many_services_are_refused() -> None:
    field = BY_NAME["requested_services"]
    values = _valid()
    values["requested_services"] = [code for code, _ in field.options] * 2
    assert _check(values).errors == {"requested_services": field.messages["tooManyItems"]}


YES_NO = [f for f in FIELDS if f.kind == "yesno"]


@pytest.mark.parametrize("field", YES_NO, ids=lambda f: f.name)
def test_a_yes_no_question_takes_only_yes_or_no(field: FormField) -> None:
    values = _valid()
    values[field.name] = ["maybe"]
    assert _check(values).errors == {field.name: labels.message("bool_parsing")}


DATES = [f for f in FIELDS if f.kind in ("date", "datetime")]


@pytest.mark.parametrize("field", DATES, ids=lambda f: f.name)
def test_a_date_that_is_not_one_is_refused(field: FormField) -> None:
    values = _valid()
    values[field.name] = ["2026-13-45"]
    assert _check(values).errors == {field.name: field.messages["badInput"]}


def test_the_discharge_date_must_not_be_before_admission_as_in_the_contract() -> None:
    field = BY_NAME["expected_discharge_date"]
    assert field.not_before == "admission_date"
    values = _valid()
    values["admission_date"] = ["2026-12-10"]
    values["expected_discharge_date"] = ["2026-12-09"]
    assert _check(values).errors == {"expected_discharge_date": field.messages["notBefore"]}
    values["expected_discharge_date"] = ["2026-12-10"]
    assert _check(values).errors == {}


def test_an_email_that_is_not_one_is_refused() -> None:
    field = BY_NAME["social_worker.email"]
    assert field.input_type == "email"
    values = _valid()
    values["social_worker.email"] = ["not-an-email"]
    assert _check(values).errors == {"social_worker.email": field.messages["typeMismatch"]}


def test_the_hospital_and_submission_time_are_the_portals_not_the_forms() -> None:
    values = _valid()
    values["hospital_id"] = ["another-hospital"]
    values["submitted_at"] = ["2020-01-01T00:00:00+00:00"]
    checked = _check(values)
    assert checked.submission is not None
    assert checked.submission.hospital_id == HOSPITAL
    assert checked.submission.submitted_at == NOW


def test_every_message_is_bilingual() -> None:
    hangul = range(0xAC00, 0xD7A4)
    for field in FIELDS:
        for text in field.messages.values():
            assert any(ord(c) in hangul for c in text), text
            assert any("a" <= c.lower() <= "z" for c in text), text
