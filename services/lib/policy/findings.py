"""The findings vocabulary: what a coordinator may record as found at a visit, as codes.

A visit's findings travel on ``care.cases`` and reach the hospital, so they are codes
from a vocabulary in configuration (``deploy/config/findings.yaml``), each with a
Korean and an English label, never free text: a coordinator's free-text note stays in
scheduling's store. Scheduling refuses a code the vocabulary lacks, the console offers
the vocabulary's codes with their labels, and outcome sends the hospital the codes
with both labels (dropping, and logging without the value, anything else).

No I/O other than reading the configuration file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.scheduling import FINDING_CODE_MAX_LENGTH, FINDING_CODE_PATTERN
from services.lib.policy.policy import (
    REPO_ROOT,
    ConfigError,
    load_yaml_mapping,
    validation_problems,
)
from services.lib.policy.providers import line_of
from services.lib.policy.registry import LocalizedName

__all__ = [
    "DEFAULT_FINDINGS_FILE",
    "FINDINGS_FILE_ENV",
    "MAX_FINDINGS",
    "Finding",
    "Findings",
    "load_findings",
]

DEFAULT_FINDINGS_FILE = REPO_ROOT / "deploy" / "config" / "findings.yaml"
FINDINGS_FILE_ENV = "CARELINK_FINDINGS_FILE"
# A vocabulary a coordinator can read through on a visit form.
MAX_FINDINGS = 50

_WHAT = "findings file"

Code = Annotated[
    str, Field(strict=True, pattern=FINDING_CODE_PATTERN, max_length=FINDING_CODE_MAX_LENGTH)
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Finding(_Frozen):
    """One code of the vocabulary with its labels."""

    code: Code
    label: LocalizedName

    def summary(self) -> dict[str, Any]:
        """What a hospital receives for it: the code and both labels."""
        return {"code": self.code, "label": {"ko": self.label.ko, "en": self.label.en}}


class Findings(_Frozen):
    """The vocabulary, in the order the console offers it."""

    version: Annotated[int, Field(strict=True, ge=1)] = 1
    findings: tuple[Finding, ...]

    @field_validator("findings")
    @classmethod
    def _unique_codes(cls, value: tuple[Finding, ...]) -> tuple[Finding, ...]:
        if not value:
            raise ValueError("at least one finding is required")
        if len(value) > MAX_FINDINGS:
            raise ValueError(f"at most {MAX_FINDINGS} findings, got {len(value)}")
        codes = [f.code for f in value]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate codes: {', '.join(dupes)}")
        return value

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(f.code for f in self.findings)

    def get(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def __contains__(self, code: object) -> bool:
        return any(f.code == code for f in self.findings)

    def unknown(self, codes: Sequence[str]) -> tuple[int, ...]:
        """The positions in ``codes`` of what the vocabulary does not have."""
        return tuple(i for i, code in enumerate(codes) if code not in self)

    def known(self, codes: Iterable[str]) -> tuple[Finding, ...]:
        """The vocabulary's findings among ``codes``, in the order given, each once;
        anything else is left out (the caller says how many, never which)."""
        found: list[Finding] = []
        for code in codes:
            finding = self.get(code)
            if finding is not None and finding not in found:
                found.append(finding)
        return tuple(found)


def _findings_file(path: Path | None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get(FINDINGS_FILE_ENV)
    return Path(env) if env else DEFAULT_FINDINGS_FILE


def _located(text: str, problems: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    located = []
    for field, message in problems:
        line = line_of(root, field) if field and root is not None else None
        located.append((field, f"{message} (line {line})" if line else message))
    return located


def load_findings(path: Path | None = None) -> Findings:
    """Load and validate the findings vocabulary.

    Default path: ``$CARELINK_FINDINGS_FILE`` if set, else the repo's
    ``deploy/config/findings.yaml``. A malformed file raises ConfigError naming the
    file, each field (e.g. ``findings.3.label.en``) and its line.
    """
    file = _findings_file(path)
    data = load_yaml_mapping(file, what=_WHAT)
    try:
        return Findings.model_validate(data)
    except ValidationError as exc:
        problems = _located(file.read_text(encoding="utf-8"), validation_problems(exc))
        raise ConfigError(file, problems, what=_WHAT) from None
