"""The registry: 13 hospitals, 25 served districts, malformed files give ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.lib.policy import ConfigError, Registry, load_policies, load_registry
from services.lib.policy.registry import DEFAULT_REGISTRY_FILE, REGISTRY_FILE_ENV

EXPECTED_HOSPITALS = {
    "police-hospital": "Songpa-gu",
    "kangbuk-samsung": "Jongno-gu",
    "konkuk-university": "Gwangjin-gu",
    "kyung-hee-university": "Dongdaemun-gu",
    "korea-university-guro": "Guro-gu",
    "seoul-national-university": "Jongno-gu",
    "gangnam-severance": "Gangnam-gu",
    "ewha-mokdong": "Yangcheon-gu",
    "chung-ang-university": "Dongjak-gu",
    "seoul-st-marys": "Seocho-gu",
    "korea-university-anam": "Seongbuk-gu",
    "severance": "Seodaemun-gu",
    "hanyang-university": "Seongdong-gu",
}

SEOUL_GU = {
    "Jongno-gu", "Jung-gu", "Yongsan-gu", "Seongdong-gu", "Gwangjin-gu",
    "Dongdaemun-gu", "Jungnang-gu", "Seongbuk-gu", "Gangbuk-gu", "Dobong-gu",
    "Nowon-gu", "Eunpyeong-gu", "Seodaemun-gu", "Mapo-gu", "Yangcheon-gu",
    "Gangseo-gu", "Guro-gu", "Geumcheon-gu", "Yeongdeungpo-gu", "Dongjak-gu",
    "Gwanak-gu", "Seocho-gu", "Gangnam-gu", "Songpa-gu", "Gangdong-gu",
}  # fmt: skip

MINIMAL = """\
hospitals:
  - id: police-hospital
    name: {ko: 국립경찰병원, en: National Police Hospital}
    district: Songpa-gu
centres:
  - id: centre-songpa-gu
    name: {ko: 송파구 돌봄SOS센터, en: Songpa-gu Care SOS Centre}
    district: Songpa-gu
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _config_error(tmp_path: Path, text: str) -> ConfigError:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_registry(path)
    assert str(path) in str(info.value), "the message must name the file"
    return info.value


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(DEFAULT_REGISTRY_FILE)


def test_thirteen_hospitals_in_their_districts(registry: Registry) -> None:
    assert len(registry.hospitals) == 13
    assert registry.hospital_ids == frozenset(EXPECTED_HOSPITALS)
    assert {h.id: h.district for h in registry.hospitals} == EXPECTED_HOSPITALS


def test_police_hospital_names(registry: Registry) -> None:
    police = registry.hospital("police-hospital")
    assert police is not None
    assert police.name.ko == "국립경찰병원"
    assert police.name.en == "National Police Hospital"
    assert police.district == "Songpa-gu"


def test_every_hospital_has_korean_and_english_names(registry: Registry) -> None:
    for hospital in registry.hospitals:
        assert hospital.name.ko != hospital.name.en
        assert any("\uac00" <= ch <= "\ud7a3" for ch in hospital.name.ko), hospital.id


def test_twenty_five_districts_one_centre_each(registry: Registry) -> None:
    assert len(registry.centres) == 25
    assert set(registry.districts) == SEOUL_GU
    for district in SEOUL_GU:
        centre = registry.centre_for(district)
        assert centre is not None
        assert centre.district == district
        assert centre.id == f"centre-{district.lower()}"
    assert registry.centre_for("Songpa-gu") is not None
    assert registry.centre_for("Songpa-gu").id == "centre-songpa-gu"  # type: ignore[union-attr]


def test_unserved_district_has_no_centre(registry: Registry) -> None:
    assert registry.centre_for("Suwon-si") is None
    assert registry.centre_for("songpa-gu") is None  # spelling is exact


def test_every_hospital_district_is_served(registry: Registry) -> None:
    book = load_policies()
    for policy in book.policies:
        assert set(policy.served_districts) == set(registry.districts), policy.year
        assert registry.uncovered_districts(policy.served_districts) == ()
        for hospital in registry.hospitals:
            assert policy.serves(hospital.district), (policy.year, hospital.id)
            assert registry.centre_for(hospital.district) is not None


def test_uncovered_districts_reports_missing_centres(registry: Registry) -> None:
    assert registry.uncovered_districts(["Songpa-gu", "Suwon-si", "Seongnam-si"]) == (
        "Suwon-si",
        "Seongnam-si",
    )


def test_is_registered(registry: Registry) -> None:
    assert registry.is_registered("police-hospital")
    assert registry.is_registered("seoul-st-marys")
    assert not registry.is_registered("unknown-hospital")
    assert not registry.is_registered("Police-Hospital")
    assert registry.hospital("nope") is None


def test_registry_is_frozen(registry: Registry) -> None:
    with pytest.raises(ValidationError):
        registry.hospitals[0].district = "Mapo-gu"  # type: ignore[misc]


def test_env_overrides_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, MINIMAL)
    monkeypatch.setenv(REGISTRY_FILE_ENV, str(path))
    registry = load_registry()
    assert registry.hospital_ids == frozenset({"police-hospital"})
    assert registry.districts == ("Songpa-gu",)


def test_explicit_path_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REGISTRY_FILE_ENV, str(tmp_path / "does-not-exist.yaml"))
    assert len(load_registry(DEFAULT_REGISTRY_FILE).hospitals) == 13


def test_bad_hospital_id_names_the_field(tmp_path: Path) -> None:
    error = _config_error(tmp_path, MINIMAL.replace("id: police-hospital", "id: Police_Hospital"))
    assert error.fields == ("hospitals.0.id",)
    assert "hospitals.0.id" in str(error)
    assert "Police_Hospital" in str(error)


def test_missing_district_names_the_field(tmp_path: Path) -> None:
    text = MINIMAL.replace("    district: Songpa-gu\ncentres:", "centres:")
    error = _config_error(tmp_path, text)
    assert error.fields == ("hospitals.0.district",)
    assert "Field required" in str(error)


def test_hospital_in_unserved_district(tmp_path: Path) -> None:
    text = MINIMAL.replace("    district: Songpa-gu\ncentres:", "    district: Mapo-gu\ncentres:")
    error = _config_error(tmp_path, text)
    assert error.fields == ("hospitals.0.district",)
    assert "Mapo-gu" in str(error)


def test_two_centres_for_one_district(tmp_path: Path) -> None:
    text = MINIMAL + (
        "  - id: centre-songpa-2\n"
        "    name: {ko: 송파구 센터, en: Songpa centre 2}\n"
        "    district: Songpa-gu\n"
    )
    error = _config_error(tmp_path, text)
    assert error.fields == ("centres",)
    assert "Songpa-gu" in str(error)


def test_duplicate_hospital_id(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "centres:",
        "  - id: police-hospital\n"
        "    name: {ko: 경찰병원, en: Police}\n"
        "    district: Songpa-gu\n"
        "centres:",
    )
    error = _config_error(tmp_path, text)
    assert error.fields == ("hospitals",)
    assert "police-hospital" in str(error)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    error = _config_error(
        tmp_path,
        MINIMAL.replace(
            "    district: Songpa-gu\ncentres:", "    district: Songpa-gu\n    beds: 3\ncentres:"
        ),
    )
    assert error.fields == ("hospitals.0.beds",)


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    error = _config_error(tmp_path, MINIMAL + "hospitals: []\n")
    assert "duplicate key 'hospitals'" in str(error)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    assert "not valid YAML" in str(_config_error(tmp_path, "hospitals: [unclosed\n"))
    assert "mapping" in str(_config_error(tmp_path, "- just\n- a list\n"))
    assert "empty" in str(_config_error(tmp_path, ""))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_registry(tmp_path / "nope.yaml")


def test_empty_lists_are_refused(tmp_path: Path) -> None:
    error = _config_error(tmp_path, "hospitals: []\ncentres: []\n")
    assert error.fields == ("hospitals", "centres")
