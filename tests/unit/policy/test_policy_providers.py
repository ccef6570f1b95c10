"""The providers file: every served district has a provider for every service kind, the
suggestion comes first, and a malformed file names the file, the field and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.lib.policy import SERVICE_CODES, ConfigError, Registry, load_registry
from services.lib.policy.providers import (
    DEFAULT_PROVIDERS_FILE,
    PROVIDERS_FILE_ENV,
    Providers,
    load_providers,
)

MINIMAL = """\
version: 1
providers:
  - id: demo-a
    name: {ko: 가상 A, en: Fictional A}
    districts: [Songpa-gu]
    services: [meal_delivery]
  - id: demo-b
    name: {ko: 가상 B, en: Fictional B}
    districts: [Songpa-gu, Gangnam-gu]
    services: [meal_delivery, home_repair]
"""


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def shipped(registry: Registry) -> Providers:
    return load_providers(registry, DEFAULT_PROVIDERS_FILE)


def _error(tmp_path: Path, registry: Registry, text: str) -> ConfigError:
    path = tmp_path / "providers.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_providers(registry, path)
    assert str(path) in str(info.value), "the message must name the file"
    return info.value


def test_the_shipped_file_covers_every_district_and_service(
    shipped: Providers, registry: Registry
) -> None:
    assert shipped.uncovered(registry.districts) == ()
    assert shipped.report(registry) == ()
    for district in registry.districts:
        for service in SERVICE_CODES:
            assert shipped.suggested(district, service) is not None, (district, service)


def test_the_shipped_names_are_marked_fictional(shipped: Providers) -> None:
    for provider in shipped.providers:
        assert provider.id.startswith("demo-"), provider.id
        assert "가상" in provider.name.ko, provider.name.ko
        assert "Fictional" in provider.name.en, provider.name.en


def test_songpa_has_a_second_choice_for_home_care(shipped: Providers) -> None:
    found = [p.id for p in shipped.for_service("Songpa-gu", "temporary_home_care")]
    assert len(found) >= 2
    assert shipped.suggested("Songpa-gu", "temporary_home_care") is not None
    assert found[0] == shipped.suggested("Songpa-gu", "temporary_home_care").id  # type: ignore[union-attr]


def test_region_lists_are_flattened(shipped: Providers, registry: Registry) -> None:
    lunch = shipped.get("demo-lunchbox")
    assert lunch is not None
    assert set(lunch.districts) == set(registry.districts)


def test_the_first_listed_is_suggested(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "providers.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    providers = load_providers(registry, path)
    assert [p.id for p in providers.for_service("Songpa-gu", "meal_delivery")] == [
        "demo-a",
        "demo-b",
    ]
    assert providers.suggested("Gangnam-gu", "meal_delivery").id == "demo-b"  # type: ignore[union-attr]
    assert providers.suggested("Gangnam-gu", "accompaniment") is None
    assert ("Gangnam-gu", "accompaniment") in providers.uncovered(["Gangnam-gu"])
    assert any("Gangnam-gu" in line for line in providers.report(registry))


def test_the_environment_names_the_file(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setenv(PROVIDERS_FILE_ENV, str(path))
    assert load_providers(registry).ids == {"demo-a", "demo-b"}


def test_a_district_without_a_centre_names_field_and_line(
    tmp_path: Path, registry: Registry
) -> None:
    error = _error(
        tmp_path, registry, MINIMAL.replace("[Songpa-gu, Gangnam-gu]", "[Songpa-gu, Suwon-si]")
    )
    assert error.fields == ("providers.1.districts.1",)
    assert "line 9" in str(error)
    assert "Suwon-si" in str(error)


def test_an_unknown_service_names_field_and_line(tmp_path: Path, registry: Registry) -> None:
    error = _error(tmp_path, registry, MINIMAL.replace("[meal_delivery]", "[massage]"))
    assert error.fields == ("providers.0.services.0",)
    assert "line 6" in str(error)


def test_duplicate_ids_and_a_bad_slug_are_refused(tmp_path: Path, registry: Registry) -> None:
    error = _error(tmp_path, registry, MINIMAL.replace("demo-b", "demo-a"))
    assert error.fields == ("providers",)
    assert "demo-a" in str(error)
    error = _error(tmp_path, registry, MINIMAL.replace("id: demo-a", "id: Demo A"))
    assert error.fields == ("providers.0.id",)
    assert "line 3" in str(error)


def test_empty_lists_and_unknown_keys_are_refused(tmp_path: Path, registry: Registry) -> None:
    error = _error(
        tmp_path, registry, MINIMAL.replace("districts: [Songpa-gu]\n", "districts: []\n")
    )
    assert error.fields == ("providers.0.districts",)
    error = _error(tmp_path, registry, MINIMAL.replace("version: 1\n", "version: 1\nprices: {}\n"))
    assert error.fields == ("prices",)
    error = _error(tmp_path, registry, "version: 1\nproviders: []\n")
    assert error.fields == ("providers",)


def test_a_missing_file_and_broken_yaml_are_config_errors(
    tmp_path: Path, registry: Registry
) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_providers(registry, tmp_path / "absent.yaml")
    error = _error(tmp_path, registry, MINIMAL + "  - id: [unclosed\n")
    assert "line" in str(error)
