"""The setting of a service that applies the yearly policies: where their files are."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class PolicySettings(BaseSettings):
    # The same prefix as ServiceSettings: as a mixin, its config merges with the service's.
    model_config = SettingsConfigDict(env_prefix="CARELINK_", extra="ignore")

    # The yearly policy files (`<year>.yaml`); None = the repository's deploy/config/policy.
    policy_dir: Path | None = None
