"""The referral form IS the contract's submission: its fields, their HTML constraints
and the messages shown when one is broken all come from the JSON Schema of
`ReferralSubmitted` (contracts/hospital_v1.py), and the server validates what was
typed with that very model. One source of truth: a field added to the contract shows
up in the form, and a rule changed there changes both the browser's check and the
server's.

The browser (static/portal.js) only reads what `FormField.attrs` and
`FormField.messages` put on each input; it adds the one rule JSON Schema cannot say
(`NOT_BEFORE`, a validator of the model), with the model's own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from contracts.hospital_v1 import ReferralSubmitted
from services.lib import labels as shared
from services.lib.policy import SEOUL_TZ
from services.portal import labels

MODEL = ReferralSubmitted
# Filled in by the portal, never typed: the signed-in user's hospital and the moment
# the form is submitted.
SET_BY_PORTAL = frozenset({"hospital_id", "submitted_at"})
# A rule of the model's validators JSON Schema cannot express: field -> the field it
# must not be before (the browser sets `min` from it; the server's model says so too).
NOT_BEFORE = {"expected_discharge_date": "admission_date"}
# Long free text gets a text area.
_TEXTAREA_FROM = 1000

Kind = Literal[
    "text",
    "textarea",
    "email",
    "integer",
    "date",
    "datetime",
    "choice",
    "choices",
    "yesno",
    "check",
]

# Labels of the contract's code lists, by field.
_OPTION_LABELS: dict[str, dict[str, str]] = {
    "patient.sex": shared.SEX,
    "mobility": shared.MOBILITY,
    "requested_services": shared.SERVICES,
    "consent.method": shared.CONSENT_METHODS,
    "priority": shared.PRIORITIES,
}


@dataclass(frozen=True)
class FormField:
    name: str  # the dotted path in the submission, e.g. "patient.address.district"
    kind: Kind
    required: bool
    label: str
    options: tuple[tuple[str, str], ...] = ()
    min_length: int | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    min_items: int | None = None
    max_items: int | None = None
    not_before: str | None = None

    @property
    def group(self) -> str:
        """The object the field belongs to ("" for the submission itself)."""
        return self.name.rpartition(".")[0]

    @property
    def html_id(self) -> str:
        return "f-" + self.name.replace(".", "-").replace("_", "-")

    @property
    def input_type(self) -> str:
        return {
            "email": "email",
            "integer": "number",
            "date": "date",
            "datetime": "datetime-local",
        }.get(self.kind, "text")

    @property
    def attrs(self) -> dict[str, str]:
        """HTML constraint attributes, straight from the schema."""
        out: dict[str, str] = {}
        if self.required and self.kind not in ("choices", "check"):
            out["required"] = "required"
        if self.min_length is not None and self.min_length > 1:
            out["minlength"] = str(self.min_length)
        if self.max_length is not None:
            out["maxlength"] = str(self.max_length)
        if self.minimum is not None:
            out["min"] = str(self.minimum)
        if self.maximum is not None:
            out["max"] = str(self.maximum)
        if self.pattern is not None:
            # HTML patterns match the whole value; the schema's are anchored already.
            out["pattern"] = self.pattern.removeprefix("^").removesuffix("$")
        if self.kind == "integer":
            out["step"] = "1"
        return out

    @property
    def messages(self) -> dict[str, str]:
        """What the browser shows per broken constraint (ValidityState names): the
        server's messages for the same pydantic errors."""
        out = {"valueMissing": labels.REQUIRED, "badInput": _bad_input(self.kind)}
        if self.max_length is not None:
            out["tooLong"] = labels.message("string_too_long", {"max_length": self.max_length})
        if self.min_length is not None and self.min_length > 1:
            out["tooShort"] = labels.message("string_too_short", {"min_length": self.min_length})
        if self.minimum is not None:
            out["rangeUnderflow"] = labels.message("greater_than_equal", {"ge": self.minimum})
        if self.maximum is not None:
            out["rangeOverflow"] = labels.message("less_than_equal", {"le": self.maximum})
        if self.pattern is not None:
            out["patternMismatch"] = labels.message("string_pattern_mismatch")
        if self.kind == "email":
            out["typeMismatch"] = labels.message("value_error", msg="not a valid email address")
        if self.kind == "integer":
            out["stepMismatch"] = labels.message("int_parsing")
        if self.min_items:
            out["tooFewItems"] = labels.message("too_short", {"min_length": self.min_items})
        if self.max_items is not None:
            out["tooManyItems"] = labels.message("too_long", {"max_length": self.max_items})
        if self.not_before is not None:
            out["notBefore"] = labels.VALUE_ERRORS[f"must not be before {self.not_before}"]
        return out


def _bad_input(kind: Kind) -> str:
    return labels.message(
        {"integer": "int_parsing", "date": "date_parsing", "datetime": "datetime_parsing"}.get(
            kind, "value_error"
        )
    )


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The property's own schema, and whether null is allowed (an optional field)."""
    nullable = False
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        nullable = len(branches) < len(schema["anyOf"])
        schema = {**branches[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    if "$ref" in schema:
        schema = {**defs[schema["$ref"].rsplit("/", 1)[1]], **schema}
    return schema, nullable


def _walk(schema: dict[str, Any], defs: dict[str, Any], prefix: str, out: list[FormField]) -> None:
    required = set(schema.get("required", ()))
    for key, raw in schema["properties"].items():
        name = f"{prefix}{key}"
        if name in SET_BY_PORTAL:
            continue
        prop, nullable = _resolve(raw, defs)
        if prop.get("type") == "object" or "properties" in prop:
            _walk(prop, defs, f"{name}.", out)
            continue
        is_required = key in required and not nullable
        out.append(_field(name, prop, is_required, defs))


def _field(name: str, prop: dict[str, Any], required: bool, defs: dict[str, Any]) -> FormField:
    label = labels.FIELDS[name]
    common: dict[str, Any] = {"name": name, "required": required, "label": label}
    kind: Kind
    if prop.get("type") == "array":
        items, _ = _resolve(prop["items"], defs)
        return FormField(
            kind="choices",
            options=_options(name, items["enum"]),
            min_items=prop.get("minItems"),
            max_items=prop.get("maxItems"),
            **common,
        )
    if "enum" in prop:
        return FormField(kind="choice", options=_options(name, prop["enum"]), **common)
    if prop.get("type") == "boolean":
        # A required yes/no is asked, never assumed: an unticked box would say "no".
        return FormField(kind="yesno" if required else "check", **common)
    if prop.get("type") == "integer":
        return FormField(
            kind="integer", minimum=prop.get("minimum"), maximum=prop.get("maximum"), **common
        )
    fmt = prop.get("format")
    if fmt in ("date", "date-time", "email"):
        kind = {"date": "date", "date-time": "datetime", "email": "email"}[fmt]  # type: ignore[assignment]
    elif (prop.get("maxLength") or 0) >= _TEXTAREA_FROM:
        kind = "textarea"
    else:
        kind = "text"
    return FormField(
        kind=kind,
        min_length=prop.get("minLength"),
        max_length=prop.get("maxLength"),
        pattern=prop.get("pattern"),
        not_before=NOT_BEFORE.get(name),
        **common,
    )


def _options(name: str, values: list[str]) -> tuple[tuple[str, str], ...]:
    names = _OPTION_LABELS.get(name, {})
    return tuple((v, names.get(v, v)) for v in values)


def fields() -> list[FormField]:
    """Every field the social worker fills in, in the contract's order."""
    schema = MODEL.model_json_schema()
    out: list[FormField] = []
    _walk(schema, schema.get("$defs", {}), "", out)
    return out


FIELDS = fields()
GROUPS = ("", "social_worker", "patient", "patient.address", "consent")


Form = Mapping[str, list[str]]


@dataclass
class Checked:
    """What validating a form gave: the submission, or messages by field."""

    submission: ReferralSubmitted | None
    errors: dict[str, str] = field(default_factory=dict)


def to_data(form: Form, *, hospital_id: str, submitted_at: datetime) -> dict[str, Any]:
    """The submission's JSON as the form says it; blank optional fields are left out."""
    data: dict[str, Any] = {"hospital_id": hospital_id, "submitted_at": submitted_at.isoformat()}
    for f in FIELDS:
        values = form.get(f.name, [])
        value: Any
        if f.kind == "choices":
            value = [v for v in values if v]
        elif f.kind == "check":
            value = bool(values and values[0] == "true")
        else:
            text = values[0].strip() if values else ""
            if text == "":
                continue
            value = local_moment(text) if f.kind == "datetime" else text
        _set(data, f.name, value)
    return data


def local_moment(text: str) -> str:
    """A `datetime-local` value is Seoul time (what the social worker read off the
    clock); a value with an offset is kept as it is."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text  # the model says what is wrong with it
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SEOUL_TZ)
    return moment.isoformat()


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    target = data
    for part in parents:
        target = target.setdefault(part, {})
    target[last] = value


def check(form: Form, *, hospital_id: str, submitted_at: datetime) -> Checked:
    """Validate the form with the contract's model; errors by form field, bilingual."""
    data = to_data(form, hospital_id=hospital_id, submitted_at=submitted_at)
    try:
        return Checked(MODEL.model_validate(data))
    except ValidationError as exc:
        return Checked(None, errors_by_field(exc))


def errors_by_field(exc: ValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"] if not isinstance(p, int)) or "form"
        errors.setdefault(
            name, labels.message(error["type"], error.get("ctx"), str(error.get("msg", "")))
        )
    return errors


def form_of(submission: Mapping[str, Any]) -> dict[str, list[str]]:
    """A submission's JSON as form values (to show what was sent, or fill a form)."""
    out: dict[str, list[str]] = {}
    for f in FIELDS:
        value: Any = submission
        for part in f.name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue
        if f.kind == "choices":
            out[f.name] = [str(v) for v in value]
        elif isinstance(value, bool):
            out[f.name] = ["true" if value else "false"]
        elif f.kind == "datetime":
            out[f.name] = [_datetime_local(str(value))]
        else:
            out[f.name] = [str(value)]
    return out


def _datetime_local(text: str) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone(SEOUL_TZ)
    return moment.strftime("%Y-%m-%dT%H:%M")
