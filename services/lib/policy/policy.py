"""Versioned Care SOS policy files: models, loader and the errors the package raises.

One YAML file per year lives in ``deploy/config/policy/<year>.yaml`` (see
/work/shared/domain.md: "These numbers change every year: they belong in
versioned policy files (one per year, chosen by the referral's submission
date), never in code").  :func:`load_policies` reads them all into a
:class:`PolicyBook`; :meth:`PolicyBook.for_date` picks the policy in force on
a submission date.

A value the source does not give is written as ``null`` in the file.  The
loader never guesses it: it returns the policy with a ``missing`` list, and a
rule that needs the value raises :class:`PolicyIncomplete`.  The one explicit
exception is ``fallback_median_year``: a median-income cell that is null is
filled from that earlier year's policy (domain.md: "until then the 2025 row
serves and the gap is reported, not guessed") and listed in ``gaps``.

A malformed file raises :class:`ConfigError` naming the file and the field, so
a service stops at start instead of running on a broken policy.

No I/O other than reading the configuration files.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.lib.policy.deadlines import DeadlineRules

__all__ = [
    "DEFAULT_POLICY_DIR",
    "POLICY_DIR_ENV",
    "SERVICE_CODES",
    "AgeRules",
    "ConfigError",
    "FeeRule",
    "FeeSupport",
    "MissingValue",
    "Policy",
    "PolicyBook",
    "PolicyDocument",
    "PolicyError",
    "PolicyIncomplete",
    "PolicyNotFound",
    "RuleError",
    "ServiceCode",
    "ServicePrice",
    "ServiceUnit",
    "load_policies",
    "load_policy_file",
    "load_yaml_mapping",
    "validate_config",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_POLICY_DIR = REPO_ROOT / "deploy" / "config" / "policy"
POLICY_DIR_ENV = "CARELINK_POLICY_DIR"

ServiceCode = Literal[
    "temporary_home_care",
    "short_term_facility",
    "accompaniment",
    "home_repair",
    "residential_convenience",
    "meal_delivery",
]
"""The service codes of the hospital contract v1."""

SERVICE_CODES: tuple[str, ...] = get_args(ServiceCode)

ServiceUnit = Literal["per_30_min", "per_day", "per_hour", "per_meal"]
"""The unit a plan line's quantity is counted in."""

FeeSupport = Literal["full", "self-pay"]

HOUSEHOLD_SIZES_IN_FILE = (1, 2, 3, 4, 5, 6)

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class PolicyError(Exception):
    """Base class of the errors raised by ``services.lib.policy``."""


class ConfigError(PolicyError):
    """A configuration file (policy or registry) is missing or malformed.

    ``path`` is the file (or directory), ``problems`` the ``(field, message)``
    pairs, ``fields`` just the field paths (dotted, list indices as numbers,
    e.g. ``hospitals.3.district`` or ``median_income_krw.2``; ``""`` for the
    file as a whole).
    """

    def __init__(
        self,
        path: Path,
        problems: Sequence[tuple[str, str]],
        *,
        what: str = "configuration file",
    ) -> None:
        self.path = path
        self.what = what
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        self.fields: tuple[str, ...] = tuple(field for field, _ in self.problems)
        lines = [f"invalid {what} {path}:"]
        for field, message in self.problems:
            lines.append(f"  - {field}: {message}" if field else f"  - {message}")
        super().__init__("\n".join(lines))


class PolicyIncomplete(PolicyError):
    """A rule needs a policy value that is missing (null) in the policy file."""

    def __init__(self, year: int, field: str, detail: str = "") -> None:
        self.year = year
        self.field = field
        message = (
            f"policy {year} is incomplete: {field} is missing in the policy file "
            "(it must come from the official notice)"
        )
        super().__init__(f"{message}; {detail}" if detail else message)


class PolicyNotFound(PolicyError, LookupError):
    """No policy is in force on the requested date (before the first policy)."""


class RuleError(PolicyError, ValueError):
    """A rule was given input it cannot accept (e.g. a 15-day short-term stay)."""


# ---------------------------------------------------------------------------
# Shared YAML + validation helpers (also used by the registry loader)
# ---------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def load_yaml_mapping(path: Path, *, what: str) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping; raise ConfigError otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [("", "file not found")], what=what) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("", f"cannot read the file: {exc}")], what=what) from exc
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [("", f"not valid YAML: {where}{problem}")], what=what) from exc
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError(path, [("", f"the top level must be a mapping, got {kind}")], what=what)
    return data


def _field_path(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """Turn pydantic's errors into readable ``(field, message)`` pairs."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"])
        if error["type"] not in {"missing", "extra_forbidden"} and "input" in error:
            value = error["input"]
            if not isinstance(value, dict | list):
                message = f"{message} (got {_short_repr(value)})"
        problems.append((_field_path(error["loc"]), message))
    return problems


_M = TypeVar("_M", bound=BaseModel)


def validate_config(model: type[_M], data: Mapping[str, Any], path: Path, *, what: str) -> _M:
    """Validate ``data`` against ``model``; a failure becomes a ConfigError naming the fields."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, validation_problems(exc), what=what) from None


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

Money = Annotated[int, Field(strict=True, gt=0)]
Age = Annotated[int, Field(strict=True, ge=0, le=150)]
DistrictName = Annotated[str, Field(strict=True, min_length=2, max_length=40, pattern=r"^\S.*\S$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgeRules(_Frozen):
    """Age 50+ (middle-aged, elderly included); registered disabled residents from 6."""

    general_min_age: Age
    registered_disability_min_age: Age


class FeeRule(_Frozen):
    """Full support at or below ``full_support_max_median_pct`` % of the median; else self-pay.

    ``self_pay_share`` is the resident's share of the cost for a self-pay household
    (1.0 = the resident pays the full cost, as district rules say).
    """

    full_support_max_median_pct: Annotated[int, Field(strict=True, gt=0, le=1000)] = 100
    self_pay_share: Annotated[Decimal, Field(ge=0, le=1)] = Decimal(1)


class ServicePrice(_Frozen):
    """The unit price of one service; ``price_krw`` null = missing in the source."""

    unit: ServiceUnit
    price_krw: Money | None
    max_units_per_stay: Annotated[int, Field(strict=True, gt=0)] | None = None


class PolicyDocument(_Frozen):
    """A policy file exactly as written (null = missing in the source)."""

    year: Annotated[int, Field(strict=True, ge=2000, le=2100)]
    valid_from: date
    served_districts: tuple[DistrictName, ...]
    eligibility: AgeRules
    median_income_krw: dict[Annotated[int, Field(strict=True)], Money | None]
    fallback_median_year: Annotated[int, Field(strict=True)] | None = None
    fee: FeeRule = FeeRule()
    services: dict[ServiceCode, ServicePrice]
    annual_cap_krw: Money
    per_service_caps_krw: dict[ServiceCode, Money] | None
    # PIPA art. 21: how long a closed case's personal data is kept (whole years after the
    # closure, by the policy in force on the closure date); then intake destroys it.
    personal_data_retention_years: Annotated[int, Field(strict=True, ge=1, le=30)] = 5
    # Task deadlines per kind (issue 10); absent: the programme's rules (deadlines.py).
    deadlines: DeadlineRules = DeadlineRules()
    notes: str | None = None

    @field_validator("valid_from", mode="before")
    @classmethod
    def _date_not_datetime(cls, value: Any) -> Any:
        if isinstance(value, datetime):
            raise ValueError("must be a date (YYYY-MM-DD), not a date and time")
        return value

    @field_validator("served_districts")
    @classmethod
    def _unique_districts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one served district is required")
        duplicates = sorted({d for d in value if value.count(d) > 1})
        if duplicates:
            raise ValueError(f"duplicate districts: {', '.join(duplicates)}")
        return value

    @field_validator("median_income_krw")
    @classmethod
    def _household_sizes(cls, value: dict[int, int | None]) -> dict[int, int | None]:
        expected = set(HOUSEHOLD_SIZES_IN_FILE)
        absent = sorted(expected - set(value))
        extra = sorted(set(value) - expected)
        if absent or extra:
            parts = []
            if absent:
                parts.append(f"household sizes {absent} are absent (write null if unknown)")
            if extra:
                parts.append(f"household sizes {extra} must not be stored (7+ is derived)")
            raise ValueError("; ".join(parts) + "; expected exactly 1..6")
        return dict(sorted(value.items()))

    @field_validator("services")
    @classmethod
    def _all_services(cls, value: dict[str, ServicePrice]) -> dict[str, ServicePrice]:
        absent = [code for code in SERVICE_CODES if code not in value]
        if absent:
            raise ValueError(
                f"services {', '.join(absent)} are absent (write price_krw: null if unknown)"
            )
        return value


class MissingValue(_Frozen):
    """A value the source does not give for a policy year.

    ``filled_from_year`` is set when the loader filled it from the fallback
    year's policy (a *gap*: rules work, but the service should log it at start);
    otherwise it is unresolved and a rule that needs it raises PolicyIncomplete.
    """

    year: int
    field: str
    filled_from_year: int | None = None

    def describe(self) -> str:
        if self.filled_from_year is not None:
            return (
                f"policy {self.year}: {self.field} is missing in the source; the "
                f"{self.filled_from_year} value is used until the official notice"
            )
        return (
            f"policy {self.year}: {self.field} is missing in the source; rules that "
            "need it raise PolicyIncomplete"
        )

    def __str__(self) -> str:
        return self.describe()


class Policy(PolicyDocument):
    """A policy as resolved by the loader: fallback cells filled, missing values listed."""

    missing: tuple[MissingValue, ...] = ()
    source_file: str | None = None

    @property
    def gaps(self) -> tuple[MissingValue, ...]:
        """Missing values filled from the fallback year (log them at start)."""
        return tuple(m for m in self.missing if m.filled_from_year is not None)

    @property
    def unresolved(self) -> tuple[MissingValue, ...]:
        """Missing values with no fallback: rules needing them raise PolicyIncomplete."""
        return tuple(m for m in self.missing if m.filled_from_year is None)

    @property
    def is_complete(self) -> bool:
        return not self.missing

    def serves(self, district: str) -> bool:
        """Whether ``district`` (spelt as in this file, e.g. "Songpa-gu") is served."""
        return district in self.served_districts


class PolicyBook(_Frozen):
    """All loaded policies, ordered by ``valid_from``."""

    policies: tuple[Policy, ...]

    @field_validator("policies")
    @classmethod
    def _ordered_unique(cls, value: tuple[Policy, ...]) -> tuple[Policy, ...]:
        if not value:
            raise ValueError("at least one policy is required")
        ordered = tuple(sorted(value, key=lambda p: p.valid_from))
        starts = [p.valid_from for p in ordered]
        if len(set(starts)) != len(starts):
            raise ValueError("two policies have the same valid_from")
        return ordered

    @property
    def years(self) -> tuple[int, ...]:
        return tuple(p.year for p in self.policies)

    def for_date(self, d: date) -> Policy:
        """The policy in force on ``d``: the latest ``valid_from`` on or before ``d``.

        ``d`` is the referral's submission date in Seoul time (see
        ``rules.seoul_date``).  A date before the first policy raises PolicyNotFound.
        """
        if isinstance(d, datetime):
            raise TypeError("for_date() takes a date; convert datetimes with rules.seoul_date()")
        starts = [p.valid_from for p in self.policies]
        index = bisect.bisect_right(starts, d) - 1
        if index < 0:
            first = self.policies[0]
            raise PolicyNotFound(
                f"no policy is in force on {d.isoformat()}: the first policy ({first.year}) "
                f"starts on {first.valid_from.isoformat()}"
            )
        return self.policies[index]

    def for_year(self, year: int) -> Policy:
        for policy in self.policies:
            if policy.year == year:
                return policy
        raise PolicyNotFound(f"no policy file for {year} (loaded: {list(self.years)})")

    @property
    def missing(self) -> tuple[MissingValue, ...]:
        return tuple(m for p in self.policies for m in p.missing)

    @property
    def gaps(self) -> tuple[MissingValue, ...]:
        return tuple(m for p in self.policies for m in p.gaps)

    def report(self) -> tuple[str, ...]:
        """One line per missing value, for a service to log at start (no personal data)."""
        return tuple(m.describe() for m in self.missing)


# ---------------------------------------------------------------------------
# Loader
# ---------------------------------------------------------------------------

_WHAT = "policy file"
_FILE_NAME = re.compile(r"^(\d{4})\.ya?ml$")


def _policy_dir(directory: Path | None) -> Path:
    if directory is not None:
        return Path(directory)
    env = os.environ.get(POLICY_DIR_ENV)
    return Path(env) if env else DEFAULT_POLICY_DIR


def load_policy_file(path: Path) -> PolicyDocument:
    """Read and validate one policy file as written (no fallback resolution)."""
    data = load_yaml_mapping(path, what=_WHAT)
    doc = validate_config(PolicyDocument, data, path, what=_WHAT)
    problems: list[tuple[str, str]] = []
    match = _FILE_NAME.match(path.name)
    if match is None:
        problems.append(("", f"the file name must be <year>.yaml, got {path.name!r}"))
    elif int(match.group(1)) != doc.year:
        problems.append(("year", f"{doc.year} does not match the file name {path.name}"))
    if doc.valid_from.year != doc.year:
        problems.append(("valid_from", f"{doc.valid_from.isoformat()} is not in {doc.year}"))
    if doc.fallback_median_year is not None and doc.fallback_median_year >= doc.year:
        problems.append(
            (
                "fallback_median_year",
                f"must be a year before {doc.year}, got {doc.fallback_median_year}",
            )
        )
    for code, price in doc.services.items():
        if price.max_units_per_stay is not None and code != "short_term_facility":
            problems.append(
                (f"services.{code}.max_units_per_stay", "only short_term_facility has stays")
            )
    if doc.services["short_term_facility"].max_units_per_stay is None:
        problems.append(
            (
                "services.short_term_facility.max_units_per_stay",
                "required (at most 14 days a stay)",
            )
        )
    if problems:
        raise ConfigError(path, problems, what=_WHAT)
    return doc


def _resolve(path: Path, doc: PolicyDocument, earlier: Mapping[int, Policy]) -> Policy:
    missing: list[MissingValue] = []
    median = dict(doc.median_income_krw)
    fallback: Policy | None = None
    if doc.fallback_median_year is not None:
        fallback = earlier.get(doc.fallback_median_year)
        if fallback is None:
            raise ConfigError(
                path,
                [
                    (
                        "fallback_median_year",
                        f"no policy file for {doc.fallback_median_year} in {path.parent}",
                    )
                ],
                what=_WHAT,
            )
    for size, value in median.items():
        if value is not None:
            continue
        field = f"median_income_krw.{size}"
        filled = fallback.median_income_krw.get(size) if fallback is not None else None
        if fallback is not None and filled is not None:
            # If the fallback's own cell was filled from further back, name the real source.
            source_year = next(
                (
                    m.filled_from_year
                    for m in fallback.gaps
                    if m.field == field and m.filled_from_year is not None
                ),
                fallback.year,
            )
            median[size] = filled
            missing.append(MissingValue(year=doc.year, field=field, filled_from_year=source_year))
        else:
            missing.append(MissingValue(year=doc.year, field=field))
    for code, price in doc.services.items():
        if price.price_krw is None:
            missing.append(MissingValue(year=doc.year, field=f"services.{code}.price_krw"))
    if doc.per_service_caps_krw is None:
        missing.append(MissingValue(year=doc.year, field="per_service_caps_krw"))
    fields = {name: getattr(doc, name) for name in PolicyDocument.model_fields}
    fields["median_income_krw"] = median
    return Policy.model_validate({**fields, "missing": tuple(missing), "source_file": str(path)})


def load_policies(directory: Path | None = None) -> PolicyBook:
    """Load every ``<year>.yaml`` in ``directory`` into a PolicyBook.

    Default directory: ``$CARELINK_POLICY_DIR`` if set, else the repo's
    ``deploy/config/policy``.  Any malformed file raises ConfigError (file and
    field named).  Missing (null) values are listed in each policy's
    ``missing``; median cells filled from ``fallback_median_year`` are also in
    ``gaps``.
    """
    root = _policy_dir(directory)
    if not root.is_dir():
        raise ConfigError(root, [("", "policy directory not found")], what="policy directory")
    docs: dict[int, tuple[Path, PolicyDocument]] = {}
    for path in sorted(root.iterdir()):
        if not path.is_file() or path.suffix not in {".yaml", ".yml"}:
            continue
        doc = load_policy_file(path)
        if doc.year in docs:
            raise ConfigError(
                path,
                [("year", f"{doc.year} is also defined in {docs[doc.year][0].name}")],
                what=_WHAT,
            )
        docs[doc.year] = (path, doc)
    if not docs:
        raise ConfigError(
            root, [("", "no policy files (<year>.yaml) found")], what="policy directory"
        )
    resolved: dict[int, Policy] = {}
    for year in sorted(docs):
        path, doc = docs[year]
        resolved[year] = _resolve(path, doc, resolved)
    return PolicyBook(policies=tuple(resolved.values()))
