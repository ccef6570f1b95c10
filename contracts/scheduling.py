"""Events the scheduling service (visits) appends to `care.cases`."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from contracts.cases import CaseEvent, register

VisitKind = Literal["pre-discharge", "post-discharge"]

# A finding code: a lowercase slug from the findings vocabulary
# (deploy/config/findings.yaml, e.g. `fall-risk`). Which codes exist is configuration;
# the shape is the contract.
FINDING_CODE_PATTERN = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
FINDING_CODE_MAX_LENGTH = 40
FindingCode = Annotated[
    str, StringConstraints(pattern=FINDING_CODE_PATTERN, max_length=FINDING_CODE_MAX_LENGTH)
]


def is_finding_code(value: object) -> bool:
    """Whether `value` has the shape of a finding code (not whether the vocabulary has it)."""
    return (
        isinstance(value, str)
        and len(value) <= FINDING_CODE_MAX_LENGTH
        and re.fullmatch(FINDING_CODE_PATTERN, value) is not None
    )


@register
class VisitScheduled(CaseEvent):
    ce_type = "carelink.case.visit-scheduled.v1"
    producer = "scheduling"

    kind: VisitKind
    window_start: AwareDatetime
    window_end: AwareDatetime


@register
class VisitDone(CaseEvent):
    ce_type = "carelink.case.visit-done.v1"
    producer = "scheduling"

    kind: VisitKind
    # "missed": the patient left hospital before the pre-discharge visit could happen.
    outcome: Literal["done", "missed"] = "done"
    precautions_acknowledged: bool
    # Finding codes only (the vocabulary's); a coordinator's free-text note stays in
    # scheduling's store and never travels.
    findings: list[FindingCode] = Field(
        default=[], description="codes of the findings vocabulary (deploy/config/findings.yaml)"
    )
    # How many findings the record held that were not codes (events written before
    # findings were codes carried free strings): dropped on reading, never kept.
    _not_codes: int = PrivateAttr(default=0)

    @model_validator(mode="wrap")
    @classmethod
    def _codes_only(cls, data: Any, handler: ModelWrapValidatorHandler[VisitDone]) -> VisitDone:
        """A tolerant reader: anything in `findings` that is not shaped like a code is
        dropped (counted in `not_codes`, its value kept nowhere) instead of refusing the
        whole event."""
        dropped = 0
        if isinstance(data, dict) and isinstance(data.get("findings"), list):
            raw = data["findings"]
            kept = [value for value in raw if is_finding_code(value)]
            dropped = len(raw) - len(kept)
            if dropped:
                data = {**data, "findings": kept}
        event = handler(data)
        event._not_codes = dropped
        return event

    @property
    def not_codes(self) -> int:
        """Findings dropped on reading because they were not codes (values not kept)."""
        return self._not_codes


@register
class CaseOnHold(CaseEvent):
    """Visits are suspended until the reason clears."""

    ce_type = "carelink.case.on-hold.v1"
    producer = "scheduling"

    reason_code: Literal["discharge-postponed", "readmitted", "unreachable"]


@register
class CaseResumed(CaseEvent):
    """The reason for the hold cleared; the suspended visit is planned again."""

    ce_type = "carelink.case.resumed.v1"
    producer = "scheduling"

    kind: VisitKind
