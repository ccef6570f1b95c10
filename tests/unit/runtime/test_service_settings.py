"""Each service reads its own settings; the runtime's settings name no service."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.intake.settings import IntakeSettings
from services.lib.runtime import settings as runtime_settings
from services.outcome.settings import OutcomeSettings
from services.referral.settings import ReferralSettings
from services.scheduling.settings import SchedulingSettings


def test_the_runtime_settings_name_no_service() -> None:
    source = Path(runtime_settings.__file__).read_text(encoding="utf-8")
    for name in ("intake", "referral", "scheduling", "outcome"):
        assert name not in source, f"services.lib.runtime.settings mentions {name}"
    fields = set(runtime_settings.ServiceSettings.model_fields)
    assert not fields & {"max_contact_attempts", "postponement_horizon_days", "policy_dir"}


def test_domain_settings_belong_to_the_service_that_applies_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELINK_MAX_CONTACT_ATTEMPTS", "5")
    monkeypatch.setenv("CARELINK_POSTPONEMENT_HORIZON_DAYS", "21")
    monkeypatch.setenv("CARELINK_DEADLINE_SCAN_INTERVAL_S", "7")
    scheduling = SchedulingSettings()
    assert (scheduling.max_contact_attempts, scheduling.postponement_horizon_days) == (5, 21)
    assert scheduling.deadline_scan_interval_s == 7
    assert ReferralSettings().deadline_scan_interval_s == 7
    assert "max_contact_attempts" not in ReferralSettings.model_fields
    assert "deadline_scan_interval_s" not in OutcomeSettings.model_fields


def test_the_policy_folder_is_read_by_the_services_that_apply_policies(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CARELINK_POLICY_DIR", str(tmp_path))
    # A mixin's own config must not lose the CARELINK_ prefix of the service's settings.
    monkeypatch.setenv("CARELINK_DATABASE_URL", "postgresql://example/intake")
    intake = IntakeSettings()
    assert intake.policy_dir == tmp_path
    assert intake.database_url == "postgresql://example/intake"
    assert ReferralSettings().policy_dir == tmp_path
    # Scheduling dates the visits by the policies' deadline rules (issue 10).
    assert SchedulingSettings().policy_dir == tmp_path
    assert "policy_dir" not in OutcomeSettings.model_fields


def test_each_service_has_its_own_name_and_port() -> None:
    classes = (IntakeSettings, ReferralSettings, SchedulingSettings, OutcomeSettings)
    names = [cls().service for cls in classes]
    ports = [cls().health_port for cls in classes]
    assert names == ["intake", "referral", "scheduling", "outcome"]
    assert len(set(ports)) == len(ports)
