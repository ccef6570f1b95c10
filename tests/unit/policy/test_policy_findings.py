"""The findings vocabulary: the shipped file loads, and a malformed file is refused with
an error naming the file, the field and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.lib.policy import ConfigError, Findings, load_findings
from services.lib.policy.findings import DEFAULT_FINDINGS_FILE, FINDINGS_FILE_ENV

MINIMAL = """\
version: 1
findings:
  - code: fall-risk
    label: {ko: 낙상 위험, en: Fall risk}
  - code: needs-meal-support
    label: {ko: 식사 준비 도움 필요, en: Needs help with meals}
"""


@pytest.fixture(scope="module")
def shipped() -> Findings:
    return load_findings(DEFAULT_FINDINGS_FILE)


def _error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "findings.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_findings(path)
    assert str(path) in str(info.value), "the message must name the file"
    assert "findings file" in str(info.value)
    return info.value


def test_the_shipped_vocabulary_has_the_usual_codes_with_both_labels(shipped: Findings) -> None:
    for code in (
        "fall-risk",
        "needs-meal-support",
        "home-hazard",
        "lives-alone-unsafe",
        "caregiver-strain",
        "medication-help",
    ):
        finding = shipped.get(code)
        assert finding is not None, code
        assert finding.label.ko
        assert finding.label.en
        assert any("\uac00" <= ch <= "\ud7a3" for ch in finding.label.ko), finding.label.ko
    assert len(shipped.codes) == len(set(shipped.codes))


def test_file_order_is_kept_and_lookups_work(tmp_path: Path) -> None:
    path = tmp_path / "findings.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    findings = load_findings(path)
    assert findings.codes == ("fall-risk", "needs-meal-support")
    assert "fall-risk" in findings
    assert "home-hazard" not in findings
    assert findings.unknown(["needs-meal-support", "home-hazard", "fall-risk", "x"]) == (1, 3)
    kept = findings.known(["x", "needs-meal-support", "fall-risk", "needs-meal-support"])
    assert [f.code for f in kept] == ["needs-meal-support", "fall-risk"]
    assert kept[1].summary() == {
        "code": "fall-risk",
        "label": {"ko": "낙상 위험", "en": "Fall risk"},
    }


def test_the_environment_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    monkeypatch.setenv(FINDINGS_FILE_ENV, str(path))
    assert load_findings().codes == ("fall-risk", "needs-meal-support")


def test_a_code_that_is_not_a_slug_names_field_and_line(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL.replace("code: needs-meal-support", "code: Needs Meals"))
    assert error.fields == ("findings.1.code",)
    assert "line 5" in str(error)


def test_a_missing_label_names_field_and_line(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL.replace("{ko: 낙상 위험, en: Fall risk}", "{ko: 낙상 위험}"))
    assert error.fields == ("findings.0.label.en",)
    assert "line 4" in str(error)


def test_an_empty_label_names_the_field(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL.replace("en: Fall risk", 'en: ""'))
    assert error.fields == ("findings.0.label.en",)


def test_a_duplicate_code_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, MINIMAL.replace("code: needs-meal-support", "code: fall-risk"))
    assert error.fields == ("findings",)
    assert "duplicate codes: fall-risk" in str(error)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    error = _error(
        tmp_path, MINIMAL.replace("  - code: fall-risk\n", "  - code: fall-risk\n    kode: x\n")
    )
    assert error.fields == ("findings.0.kode",)


def test_no_findings_at_all_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, "version: 1\nfindings: []\n")
    assert error.fields == ("findings",)
    assert "at least one finding" in str(error)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the top level must be a mapping"),
        ("findings: [\n", "not valid YAML"),
        ("version: 1\n", "Field required"),
    ],
)
def test_a_broken_file_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    assert message in str(_error(tmp_path, text))


def test_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found") as info:
        load_findings(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)
