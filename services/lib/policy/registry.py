"""The registry: registered hospitals and the Care SOS centres of the served districts.

Hospitals and districts are configuration, not code (``deploy/config/registry.yaml``).
A hospital id is the slug of the hospital contract v1 (``[a-z0-9-]{2,40}``) and
names the hospital's two Kafka topics.  There is one Care SOS centre
(돌봄SOS센터) per served district; every hospital's own district is served.

No I/O other than reading the configuration file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.lib.policy.policy import (
    REPO_ROOT,
    ConfigError,
    load_yaml_mapping,
    validate_config,
)

__all__ = [
    "DEFAULT_REGISTRY_FILE",
    "HOSPITAL_ID_PATTERN",
    "REGISTRY_FILE_ENV",
    "CareSosCentre",
    "Hospital",
    "LocalizedName",
    "Registry",
    "load_registry",
]

DEFAULT_REGISTRY_FILE = REPO_ROOT / "deploy" / "config" / "registry.yaml"
REGISTRY_FILE_ENV = "CARELINK_REGISTRY_FILE"
HOSPITAL_ID_PATTERN = r"^[a-z0-9-]{2,40}$"

_WHAT = "registry file"

Slug = Annotated[str, Field(strict=True, pattern=HOSPITAL_ID_PATTERN)]
Text = Annotated[str, Field(strict=True, min_length=1, max_length=200)]
District = Annotated[str, Field(strict=True, min_length=2, max_length=40, pattern=r"^\S.*\S$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LocalizedName(_Frozen):
    ko: Text
    en: Text


class Hospital(_Frozen):
    id: Slug
    name: LocalizedName
    district: District


class CareSosCentre(_Frozen):
    id: Slug
    name: LocalizedName
    district: District


def _duplicates(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    dupes: list[str] = []
    for value in values:
        if value in seen and value not in dupes:
            dupes.append(value)
        seen.add(value)
    return dupes


class Registry(_Frozen):
    """Registered hospitals and the Care SOS centre of each served district."""

    version: Annotated[int, Field(strict=True, ge=1)] = 1
    # Emptiness is checked in the validators (pydantic would also report a
    # spurious "too short" next to every invalid item).
    hospitals: tuple[Hospital, ...]
    centres: tuple[CareSosCentre, ...]

    @field_validator("hospitals")
    @classmethod
    def _unique_hospitals(cls, value: tuple[Hospital, ...]) -> tuple[Hospital, ...]:
        if not value:
            raise ValueError("at least one hospital is required")
        dupes = _duplicates(h.id for h in value)
        if dupes:
            raise ValueError(f"duplicate hospital ids: {', '.join(dupes)}")
        return value

    @field_validator("centres")
    @classmethod
    def _one_centre_per_district(
        cls, value: tuple[CareSosCentre, ...]
    ) -> tuple[CareSosCentre, ...]:
        if not value:
            raise ValueError("at least one Care SOS centre is required")
        dupes = _duplicates(c.id for c in value)
        if dupes:
            raise ValueError(f"duplicate centre ids: {', '.join(dupes)}")
        dupes = _duplicates(c.district for c in value)
        if dupes:
            raise ValueError(f"more than one centre for district(s): {', '.join(dupes)}")
        return value

    @property
    def hospital_ids(self) -> frozenset[str]:
        """The registered hospital slugs."""
        return frozenset(h.id for h in self.hospitals)

    @property
    def districts(self) -> tuple[str, ...]:
        """The served districts: those with a Care SOS centre, in file order."""
        return tuple(c.district for c in self.centres)

    def is_registered(self, hospital_id: str) -> bool:
        """Whether ``hospital_id`` may send referrals (else: rejected ``unknown-hospital``)."""
        return hospital_id in self.hospital_ids

    def hospital(self, hospital_id: str) -> Hospital | None:
        """The hospital with that id, or None if it is not registered."""
        return next((h for h in self.hospitals if h.id == hospital_id), None)

    def centre_for(self, district: str) -> CareSosCentre | None:
        """The Care SOS centre serving ``district``, or None if the district is not served."""
        return next((c for c in self.centres if c.district == district), None)

    def uncovered_districts(self, served_districts: Iterable[str]) -> tuple[str, ...]:
        """Districts (e.g. a policy's ``served_districts``) that have no centre here."""
        covered = set(self.districts)
        return tuple(d for d in served_districts if d not in covered)


def _registry_file(path: Path | None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get(REGISTRY_FILE_ENV)
    return Path(env) if env else DEFAULT_REGISTRY_FILE


def load_registry(path: Path | None = None) -> Registry:
    """Load and validate the registry.

    Default path: ``$CARELINK_REGISTRY_FILE`` if set, else the repo's
    ``deploy/config/registry.yaml``.  A malformed file raises ConfigError naming
    the file and the field (e.g. ``hospitals.3.district``); a hospital whose
    district has no centre is malformed too.
    """
    file = _registry_file(path)
    data = load_yaml_mapping(file, what=_WHAT)
    registry = validate_config(Registry, data, file, what=_WHAT)
    served = set(registry.districts)
    problems = [
        (
            f"hospitals.{index}.district",
            f"hospital {hospital.id!r} is in {hospital.district!r}, which has no Care SOS centre",
        )
        for index, hospital in enumerate(registry.hospitals)
        if hospital.district not in served
    ]
    if problems:
        raise ConfigError(file, problems, what=_WHAT)
    return registry
