"""FHIR errors: every failure the gateway answers is an OperationOutcome naming the
element (`expression`, a FHIRPath such as `Task.input[2].valueDate`), never a stack
trace and never the offending value (it may be personal data)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Problem:
    path: str  # FHIRPath of the element, "" for the request as a whole
    message: str


class FhirError(Exception):
    """Answered as an OperationOutcome with `status` and the issue `code`
    (invalid, forbidden, not-found, conflict, security, processing …)."""

    def __init__(self, status: int, code: str, problems: Sequence[Problem]) -> None:
        self.status = status
        self.code = code
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in self.problems))


def invalid(problems: Iterable[Problem]) -> FhirError:
    return FhirError(422, "invalid", list(problems))


def single(status: int, code: str, message: str, path: str = "") -> FhirError:
    return FhirError(status, code, [Problem(path, message)])


def operation_outcome(error: FhirError) -> dict[str, Any]:
    issues: list[dict[str, Any]] = []
    for problem in error.problems:
        issue: dict[str, Any] = {
            "severity": "error",
            "code": error.code,
            "diagnostics": problem.message,
        }
        if problem.path:
            issue["expression"] = [problem.path]
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "issue": issues}


def fhir_path(root: str, loc: Sequence[str | int]) -> str:
    """`("contained", 0, "birthDate")` under `Task` → `Task.contained[0].birthDate`."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{'for' if part == 'for_fhir' else part}"
    return path


def model_problems(root: str, exc: ValidationError) -> list[Problem]:
    """The model library's validation errors as problems with FHIRPaths; the message
    only, never pydantic's `input` (it may hold personal data)."""
    return [
        Problem(fhir_path(root, _loc(error["loc"])), _message(error["msg"]))
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _loc(loc: Sequence[Any]) -> list[str | int]:
    # pydantic adds validator names (function-after[...]) to some locations: drop them.
    return [part for part in loc if isinstance(part, int) or "[" not in str(part)]


def _message(msg: str) -> str:
    return msg.removeprefix("Value error, ")
