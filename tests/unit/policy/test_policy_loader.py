"""Policy files: numbers from domain.md, year selection, missing values, malformed files."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from services.lib.policy import (
    ConfigError,
    PolicyBook,
    PolicyIncomplete,
    PolicyNotFound,
    load_policies,
    median_income,
    price_plan,
    seoul_date,
)
from services.lib.policy.policy import DEFAULT_POLICY_DIR, POLICY_DIR_ENV

MEDIAN = {
    2022: (1_944_812, 3_260_085, 4_194_701, 5_121_080, 6_024_515, 6_907_004),
    2023: (2_077_892, 3_456_155, 4_434_816, 5_400_964, 6_330_688, 7_227_981),
    2024: (2_228_445, 3_682_609, 4_714_657, 5_729_913, 6_695_735, 7_618_369),
    2025: (2_392_013, 3_932_658, 5_025_353, 6_097_773, 7_108_192, 8_064_805),
}
PRICES = {
    2025: {
        "temporary_home_care": ("per_30_min", 16_940),
        "short_term_facility": ("per_day", 71_970),
        "accompaniment": ("per_hour", 16_300),
        "home_repair": ("per_hour", 16_300),
        "residential_convenience": ("per_hour", 16_300),
        "meal_delivery": ("per_meal", 10_100),
    },
    2026: {
        "temporary_home_care": ("per_30_min", 17_450),
        "short_term_facility": ("per_day", 74_060),
        "accompaniment": ("per_hour", 16_800),
        "home_repair": ("per_hour", 16_800),
        "residential_convenience": ("per_hour", 16_800),
        "meal_delivery": ("per_meal", 10_400),
    },
}
CAP = {2022: 1_600_000, 2023: 1_600_000, 2024: 1_600_000, 2025: 1_800_000, 2026: 1_800_000}
PRICE_FIELDS = {f"services.{code}.price_krw" for code in PRICES[2025]}


@pytest.fixture(scope="module")
def book() -> PolicyBook:
    return load_policies(DEFAULT_POLICY_DIR)


def _copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(DEFAULT_POLICY_DIR, target)
    return target


def _edit(directory: Path, year: int, old: str, new: str) -> Path:
    path = directory / f"{year}.yaml"
    text = path.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _config_error(directory: Path, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_policies(directory)
    assert path.name in str(info.value), "the message must name the file"
    assert info.value.path == path
    return info.value


# --- contents -------------------------------------------------------------


def test_one_policy_per_year_from_1_january(book: PolicyBook) -> None:
    assert book.years == (2022, 2023, 2024, 2025, 2026)
    for policy in book.policies:
        assert policy.valid_from == date(policy.year, 1, 1)


def test_common_rules_in_every_year(book: PolicyBook) -> None:
    for policy in book.policies:
        assert len(policy.served_districts) == 25
        assert "Songpa-gu" in policy.served_districts
        assert policy.eligibility.general_min_age == 50
        assert policy.eligibility.registered_disability_min_age == 6
        assert policy.fee.full_support_max_median_pct == 100
        assert policy.fee.self_pay_share == Decimal(1)
        assert policy.services["short_term_facility"].max_units_per_stay == 14
        assert policy.annual_cap_krw == CAP[policy.year]


@pytest.mark.parametrize("year", sorted(MEDIAN))
def test_median_income_rows_as_published(book: PolicyBook, year: int) -> None:
    policy = book.for_year(year)
    assert tuple(policy.median_income_krw[n] for n in range(1, 7)) == MEDIAN[year]


@pytest.mark.parametrize("year", [2025, 2026])
def test_unit_prices_as_published(book: PolicyBook, year: int) -> None:
    policy = book.for_year(year)
    actual = {code: (s.unit, s.price_krw) for code, s in policy.services.items()}
    assert actual == PRICES[year]


def test_no_per_service_caps_from_2025(book: PolicyBook) -> None:
    assert book.for_year(2025).per_service_caps_krw == {}
    assert book.for_year(2026).per_service_caps_krw == {}


# --- year selection -------------------------------------------------------


def test_year_switch_on_1_january(book: PolicyBook) -> None:
    assert book.for_date(date(2025, 12, 31)).year == 2025
    assert book.for_date(date(2026, 1, 1)).year == 2026
    assert book.for_date(date(2022, 1, 1)).year == 2022
    assert book.for_date(date(2024, 7, 15)).year == 2024
    assert book.for_date(date(2031, 5, 1)).year == 2026  # the latest policy stays in force


def test_submission_instant_uses_seoul_date(book: PolicyBook) -> None:
    # 2025-12-31T15:00Z is 2026-01-01 00:00 in Seoul.
    assert book.for_date(seoul_date(datetime(2025, 12, 31, 15, 0, tzinfo=UTC))).year == 2026
    assert book.for_date(seoul_date(datetime(2025, 12, 31, 14, 59, 59, tzinfo=UTC))).year == 2025
    kst = timezone(timedelta(hours=9))
    assert seoul_date(datetime(2026, 1, 1, 0, 0, tzinfo=kst)) == date(2026, 1, 1)


def test_date_before_first_policy(book: PolicyBook) -> None:
    with pytest.raises(PolicyNotFound, match=r"2021-12-31.*2022-01-01"):
        book.for_date(date(2021, 12, 31))
    with pytest.raises(LookupError):
        book.for_year(2019)


def test_for_date_refuses_datetimes(book: PolicyBook) -> None:
    with pytest.raises(TypeError, match="seoul_date"):
        book.for_date(datetime(2026, 1, 1, tzinfo=UTC))


# --- missing values -------------------------------------------------------


@pytest.mark.parametrize("year", [2022, 2023, 2024])
def test_missing_prices_are_reported(book: PolicyBook, year: int) -> None:
    policy = book.for_year(year)
    assert not policy.is_complete
    assert all(s.price_krw is None for s in policy.services.values())
    fields = {m.field for m in policy.unresolved}
    assert fields == PRICE_FIELDS | {"per_service_caps_krw"}
    assert policy.gaps == ()
    assert all(m.year == year for m in policy.missing)


@pytest.mark.parametrize("year", [2022, 2023, 2024])
def test_rule_needing_a_missing_price_raises(book: PolicyBook, year: int) -> None:
    policy = book.for_year(year)
    with pytest.raises(PolicyIncomplete) as info:
        price_plan(policy, [("accompaniment", 2)])
    assert info.value.field == "services.accompaniment.price_krw"
    assert info.value.year == year
    assert f"policy {year}" in str(info.value)


def test_2025_is_complete(book: PolicyBook) -> None:
    assert book.for_year(2025).is_complete
    assert book.for_year(2025).missing == ()


def test_2026_is_complete_from_the_ministrys_notice(book: PolicyBook) -> None:
    policy = book.for_year(2026)
    assert policy.fallback_median_year is None
    assert policy.gaps == ()
    assert policy.median_income_krw == {
        1: 2_564_238,
        2: 4_199_292,
        3: 5_359_036,
        4: 6_494_738,
        5: 7_556_719,
        6: 8_555_952,
    }


def _with_2026_gap(directory: Path, *cells: str) -> None:
    """2026 as if its notice lacked these cells, and named 2025 to fill them."""
    for cell in cells:
        _edit(directory, 2026, cell, cell.split(":")[0] + ": null")
    _edit(directory, 2026, "fallback_median_year: null", "fallback_median_year: 2025")


def test_a_median_gap_falls_back_to_the_year_the_file_names(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    _with_2026_gap(directory, "  2: 4199292", "  5: 7556719")
    policy = load_policies(directory).for_year(2026)
    assert {m.field: m.filled_from_year for m in policy.gaps} == {
        "median_income_krw.2": 2025,
        "median_income_krw.5": 2025,
    }
    assert policy.unresolved == ()
    assert not policy.is_complete  # the gap is still reported
    # Published 2026 cells are kept; the gaps carry the 2025 values.
    assert policy.median_income_krw[2] == 3_932_658
    assert policy.median_income_krw[5] == 7_108_192
    assert median_income(policy, 4) == 6_494_738


def test_report_lists_every_missing_value_for_the_start_log(book: PolicyBook) -> None:
    lines = book.report()
    # What the sources still lack: the unit prices of 2022, 2023 and 2024 (7 each).
    assert len(lines) == 3 * 7
    assert {line.split(":")[0] for line in lines} == {"policy 2022", "policy 2023", "policy 2024"}
    assert any("policy 2023: services.meal_delivery.price_krw" in line for line in lines)
    assert book.gaps == ()


def test_report_says_which_year_fills_a_gap(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    _with_2026_gap(directory, "  3: 5359036")
    lines = load_policies(directory).report()
    gap_lines = [line for line in lines if line.startswith("policy 2026:")]
    assert len(gap_lines) == 1
    assert "median_income_krw.3" in gap_lines[0]
    assert "2025 value is used" in gap_lines[0]


def test_fallback_cell_missing_too_stays_unresolved(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    _with_2026_gap(directory, "  2: 4199292")
    _edit(directory, 2025, "  2: 3932658", "  2: null")
    book = load_policies(directory)
    policy = book.for_year(2026)
    assert {m.field for m in policy.unresolved} == {"median_income_krw.2"}
    assert median_income(policy, 3) == 5_359_036
    with pytest.raises(PolicyIncomplete, match=r"median_income_krw\.2"):
        median_income(policy, 2)


def test_env_overrides_default_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "only2025"
    directory.mkdir()
    shutil.copy(DEFAULT_POLICY_DIR / "2025.yaml", directory / "2025.yaml")
    monkeypatch.setenv(POLICY_DIR_ENV, str(directory))
    book = load_policies()
    assert book.years == (2025,)
    with pytest.raises(PolicyNotFound):
        book.for_date(date(2024, 12, 31))


# --- malformed files ------------------------------------------------------


def test_malformed_price_names_file_and_field(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2026, "price_krw: 10400", "price_krw: ten thousand")
    error = _config_error(directory, path)
    assert error.fields == ("services.meal_delivery.price_krw",)
    assert "services.meal_delivery.price_krw" in str(error)
    assert "'ten thousand'" in str(error)


def test_negative_price(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2025, "price_krw: 71970", "price_krw: -71970")
    assert _config_error(directory, path).fields == ("services.short_term_facility.price_krw",)


def test_missing_annual_cap(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2024, "annual_cap_krw: 1600000", "")
    error = _config_error(directory, path)
    assert error.fields == ("annual_cap_krw",)
    assert "Field required" in str(error)


def test_stored_household_seven_is_refused(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2025, "  6: 8064805", "  6: 8064805\n  7: 9021418")
    error = _config_error(directory, path)
    assert error.fields == ("median_income_krw",)
    assert "7+ is derived" in str(error)


def test_absent_household_row_is_refused(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2023, "  3: 4434816\n", "")
    error = _config_error(directory, path)
    assert error.fields == ("median_income_krw",)
    assert "[3]" in str(error)


def test_absent_service_is_refused(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(
        directory,
        2026,
        "  meal_delivery:  # 식사지원: lunch boxes delivered\n    unit: per_meal\n"
        "    price_krw: 10400\n",
        "",
    )
    error = _config_error(directory, path)
    assert error.fields == ("services",)
    assert "meal_delivery" in str(error)


def test_unknown_unit_and_unknown_service(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2026, "unit: per_meal", "unit: per_box")
    assert _config_error(directory, path).fields == ("services.meal_delivery.unit",)

    directory = _copy_policies(tmp_path / "b")
    path = _edit(directory, 2026, "  meal_delivery:", "  meals_on_wheels:")
    assert "services.meals_on_wheels.[key]" in _config_error(directory, path).fields


def test_self_pay_share_out_of_range(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2025, "self_pay_share: 1.0", "self_pay_share: 1.5")
    assert _config_error(directory, path).fields == ("fee.self_pay_share",)


def test_year_must_match_file_name(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2024, "year: 2024", "year: 2023")
    error = _config_error(directory, path)
    assert "year" in error.fields
    assert "2024.yaml" in str(error)


def test_valid_from_must_be_in_the_year(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2024, "valid_from: 2024-01-01", "valid_from: 2023-01-01")
    assert _config_error(directory, path).fields == ("valid_from",)


def test_fallback_year_must_exist(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    _with_2026_gap(directory, "  2: 4199292")
    (directory / "2025.yaml").unlink()
    path = directory / "2026.yaml"
    error = _config_error(directory, path)
    assert error.fields == ("fallback_median_year",)
    assert "no policy file for 2025" in str(error)


def test_fallback_year_must_be_earlier(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2026, "fallback_median_year: null", "fallback_median_year: 2026")
    assert _config_error(directory, path).fields == ("fallback_median_year",)


def test_unknown_key_and_bad_yaml(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2022, "annual_cap_krw:", "annual_cap:")
    assert set(_config_error(directory, path).fields) == {"annual_cap", "annual_cap_krw"}

    directory = _copy_policies(tmp_path / "b")
    path = _edit(directory, 2022, "served_districts:", "served_districts: [")
    assert "not valid YAML" in str(_config_error(directory, path))


def test_duplicate_district_is_refused(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    path = _edit(directory, 2025, "  - Jung-gu", "  - Jongno-gu")
    error = _config_error(directory, path)
    assert error.fields == ("served_districts",)
    assert "Jongno-gu" in str(error)


def test_badly_named_file_and_empty_dir(tmp_path: Path) -> None:
    directory = _copy_policies(tmp_path)
    shutil.copy(directory / "2025.yaml", directory / "policy-2025.yaml")
    error = _config_error(directory, directory / "policy-2025.yaml")
    assert "<year>.yaml" in str(error)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no policy files"):
        load_policies(empty)
    with pytest.raises(ConfigError, match="not found"):
        load_policies(tmp_path / "missing")
