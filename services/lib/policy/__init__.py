"""Shared configuration and rules: registry, versioned policies, pure Care SOS rules.

Pure: no I/O except reading the configuration files under ``deploy/config``.

    registry = load_registry()              # $CARELINK_REGISTRY_FILE or deploy/config/registry.yaml
    book = load_policies()                  # $CARELINK_POLICY_DIR or deploy/config/policy/
    providers = load_providers(registry)    # $CARELINK_PROVIDERS_FILE or deploy/config/providers.yaml
    findings = load_findings()              # $CARELINK_FINDINGS_FILE or deploy/config/findings.yaml
    for line in book.report(): log(line)    # missing values and fallback gaps, at start
    policy = book.for_date(seoul_date(submitted_at))
"""

from services.lib.policy.findings import Finding, Findings, load_findings
from services.lib.policy.policy import (
    SERVICE_CODES,
    AgeRules,
    ConfigError,
    FeeRule,
    FeeSupport,
    MissingValue,
    Policy,
    PolicyBook,
    PolicyDocument,
    PolicyError,
    PolicyIncomplete,
    PolicyNotFound,
    RuleError,
    ServiceCode,
    ServicePrice,
    ServiceUnit,
    load_policies,
    load_policy_file,
)
from services.lib.policy.providers import Provider, Providers, load_providers
from services.lib.policy.registry import (
    CareSosCentre,
    Hospital,
    LocalizedName,
    Registry,
    load_registry,
)
from services.lib.policy.rules import (
    MAX_HOUSEHOLD_SIZE,
    SEOUL_TZ,
    CapFit,
    FittedLine,
    LineCost,
    Payer,
    PlanCost,
    Refusal,
    ServiceLine,
    age_band,
    age_on,
    check_eligibility,
    fee_support,
    fit_to_cap,
    median_income,
    price_plan,
    seoul_date,
)

__all__ = [
    "MAX_HOUSEHOLD_SIZE",
    "SEOUL_TZ",
    "SERVICE_CODES",
    "AgeRules",
    "CapFit",
    "CareSosCentre",
    "ConfigError",
    "FeeRule",
    "FeeSupport",
    "Finding",
    "Findings",
    "FittedLine",
    "Hospital",
    "LineCost",
    "LocalizedName",
    "MissingValue",
    "Payer",
    "PlanCost",
    "Policy",
    "PolicyBook",
    "PolicyDocument",
    "PolicyError",
    "PolicyIncomplete",
    "PolicyNotFound",
    "Provider",
    "Providers",
    "Refusal",
    "Registry",
    "RuleError",
    "ServiceCode",
    "ServiceLine",
    "ServicePrice",
    "ServiceUnit",
    "age_band",
    "age_on",
    "check_eligibility",
    "fee_support",
    "fit_to_cap",
    "load_findings",
    "load_policies",
    "load_policy_file",
    "load_providers",
    "load_registry",
    "median_income",
    "price_plan",
    "seoul_date",
]
