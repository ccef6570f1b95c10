"""The providers: care providers (제공기관) each district has contracted, per service kind.

A Care SOS centre does not deliver services itself: it orders each line of a care plan
from a contracted provider and pays it for what it delivered (../shared/domain.md,
"From a care plan to services delivered"). Who is contracted where is configuration
beside the hospital registry (``deploy/config/providers.yaml``), never code.

For a district and a service code, ``Providers.for_service`` lists the contracted
providers in file order; the first is the one suggested. A district or service
without any (``Providers.uncovered``) is reported at start, not refused: a plan line
for it cannot be ordered until the file says who delivers it.

No I/O other than reading the configuration file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.lib.policy.policy import (
    REPO_ROOT,
    SERVICE_CODES,
    ConfigError,
    ServiceCode,
    load_yaml_mapping,
    validation_problems,
)
from services.lib.policy.registry import HOSPITAL_ID_PATTERN, LocalizedName, Registry

__all__ = [
    "DEFAULT_PROVIDERS_FILE",
    "PROVIDERS_FILE_ENV",
    "Provider",
    "Providers",
    "load_providers",
]

DEFAULT_PROVIDERS_FILE = REPO_ROOT / "deploy" / "config" / "providers.yaml"
PROVIDERS_FILE_ENV = "CARELINK_PROVIDERS_FILE"

_WHAT = "providers file"

Slug = Annotated[str, Field(strict=True, pattern=HOSPITAL_ID_PATTERN)]
District = Annotated[str, Field(strict=True, min_length=2, max_length=40, pattern=r"^\S.*\S$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _flatten(value: Any) -> Any:
    """A district list may hold whole lists (a region named by a YAML alias): one level
    is flattened, in order."""
    if not isinstance(value, list | tuple):
        return value
    flat: list[Any] = []
    for item in value:
        flat.extend(item if isinstance(item, list | tuple) else [item])
    return flat


def _unique(value: tuple[str, ...], what: str) -> tuple[str, ...]:
    if not value:
        raise ValueError(f"at least one {what} is required")
    dupes = sorted({v for v in value if value.count(v) > 1})
    if dupes:
        raise ValueError(f"listed twice: {', '.join(dupes)}")
    return value


class Provider(_Frozen):
    """A contracted provider: the districts it serves and the service kinds it delivers."""

    id: Slug
    name: LocalizedName
    districts: tuple[District, ...]
    services: tuple[ServiceCode, ...]

    @field_validator("districts", mode="before")
    @classmethod
    def _flat_districts(cls, value: Any) -> Any:
        return _flatten(value)

    @field_validator("districts")
    @classmethod
    def _unique_districts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "district")

    @field_validator("services")
    @classmethod
    def _unique_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _unique(value, "service")

    def delivers(self, district: str, service: str) -> bool:
        return district in self.districts and service in self.services

    def summary(self) -> dict[str, Any]:
        """What travels on care.cases and to hospitals: the id and the names (a provider
        is an organisation, not a person)."""
        return {"id": self.id, "name": {"ko": self.name.ko, "en": self.name.en}}


class Providers(_Frozen):
    version: Annotated[int, Field(strict=True, ge=1)] = 1
    # Named district lists the file may refer to with YAML aliases; not used otherwise.
    regions: tuple[tuple[District, ...], ...] = ()
    providers: tuple[Provider, ...]

    @field_validator("providers")
    @classmethod
    def _unique_ids(cls, value: tuple[Provider, ...]) -> tuple[Provider, ...]:
        if not value:
            raise ValueError("at least one provider is required")
        ids = [p.id for p in value]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate provider ids: {', '.join(dupes)}")
        return value

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(p.id for p in self.providers)

    def get(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    def for_service(self, district: str, service: str) -> tuple[Provider, ...]:
        """The providers contracted in ``district`` for ``service``, the suggested one first."""
        return tuple(p for p in self.providers if p.delivers(district, service))

    def suggested(self, district: str, service: str) -> Provider | None:
        found = self.for_service(district, service)
        return found[0] if found else None

    def uncovered(
        self, districts: Iterable[str], services: Sequence[str] = SERVICE_CODES
    ) -> tuple[tuple[str, str], ...]:
        """(district, service) pairs without any contracted provider."""
        return tuple(
            (district, service)
            for district in districts
            for service in services
            if not self.for_service(district, service)
        )

    def report(self, registry: Registry) -> tuple[str, ...]:
        """One line per district and service nobody delivers, for the service to log at
        start (a plan line for it cannot be ordered)."""
        gaps: dict[str, list[str]] = {}
        for district, service in self.uncovered(registry.districts):
            gaps.setdefault(district, []).append(service)
        return tuple(
            f"no contracted provider in {district} for {', '.join(services)}"
            for district, services in gaps.items()
        )


def _providers_file(path: Path | None) -> Path:
    if path is not None:
        return Path(path)
    env = os.environ.get(PROVIDERS_FILE_ENV)
    return Path(env) if env else DEFAULT_PROVIDERS_FILE


def _lines(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def line_of(root: yaml.Node | None, field: str) -> int | None:
    """The line (1-based) of a dotted field path in the composed YAML: the deepest node
    the path reaches (a list that holds whole lists, flattened on loading, stops it)."""
    node = root
    line = node.start_mark.line + 1 if node is not None else None
    for part in field.split(".") if field else []:
        if isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
            key = next((k for k, _ in node.value if getattr(k, "value", None) == part), None)
            if found is None or key is None:
                break
            node, line = found, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit():
            if any(isinstance(item, yaml.SequenceNode) for item in node.value):
                break  # flattened on loading: the index counts the flattened list
            index = int(part)
            if index >= len(node.value):
                break
            node = node.value[index]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _with_lines(
    root: yaml.Node | None, problems: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    located = []
    for field, message in problems:
        line = line_of(root, field) if field else None
        located.append((field, f"{message} (line {line})" if line else message))
    return located


def load_providers(registry: Registry, path: Path | None = None) -> Providers:
    """Load and validate the providers file against the registry.

    Default path: ``$CARELINK_PROVIDERS_FILE`` if set, else the repo's
    ``deploy/config/providers.yaml``. A malformed file raises ConfigError naming the
    file, each field (e.g. ``providers.3.districts.1``) and its line; a district the
    registry has no Care SOS centre for is malformed too.
    """
    file = _providers_file(path)
    data: Mapping[str, Any] = load_yaml_mapping(file, what=_WHAT)
    root = _lines(file.read_text(encoding="utf-8"))
    try:
        providers = Providers.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(file, _with_lines(root, validation_problems(exc)), what=_WHAT) from None
    served = set(registry.districts)
    problems = [
        (
            f"providers.{index}.districts.{position}",
            f"{district!r} has no Care SOS centre in the registry",
        )
        for index, provider in enumerate(providers.providers)
        for position, district in enumerate(provider.districts)
        if district not in served
    ]
    if problems:
        raise ConfigError(file, _with_lines(root, problems), what=_WHAT)
    return providers
