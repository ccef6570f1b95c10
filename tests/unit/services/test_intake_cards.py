"""services/intake/cards: what a queue row, a search hit and the case page show of a
person before a task is opened (issue 10)."""

from __future__ import annotations

import pytest

from services.intake.cards import band_at, card, initials, same_person


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("김민준", "ㄱㅁㅈ"),
        ("남궁 민수", "ㄴㄱㅁㅅ"),
        ("황보하늘빛", "ㅎㅂㅎㄴ"),  # at most four
        ("Kim Min-jun", "K. M."),
        ("  ", None),
        (None, None),
    ],
)
def test_initials_are_leading_consonants_or_first_letters(
    name: str | None, expected: str | None
) -> None:
    assert initials(name) == expected


def test_age_band_is_the_age_at_submission_in_seoul() -> None:
    # 2026-03-01 00:30 in Seoul is still 28 February in UTC: the birthday has come.
    assert band_at("1956-03-01", "2026-02-28T15:30:00+00:00") == "70-74"
    assert band_at("1956-03-01", "2026-02-28T14:30:00+00:00") == "65-69"


@pytest.mark.parametrize(("birth", "at"), [(None, "2026-01-01T00:00:00+09:00"), ("x", None)])
def test_age_band_without_a_birth_date_or_a_date_is_none(birth: str | None, at: str | None) -> None:
    assert band_at(birth, at) is None


def test_a_card_holds_initials_age_band_district_and_dong_and_nothing_else_personal() -> None:
    submission = {
        "submitted_at": "2026-12-01T10:00:00+09:00",
        "patient": {
            "name": "박서연",
            "birth_date": "1950-05-05",
            "phone": "010-1234-5678",
            "address": {"district": "Songpa-gu", "dong": "Jamsil-dong", "street": "올림픽로 1"},
        },
    }

    view = card("case-1", True, submission).view()

    assert view == {
        "case_id": "case-1",
        "open": True,
        "initials": "ㅂㅅㅇ",
        "age_band": "75-79",
        "district": "Songpa-gu",
        "dong": "Jamsil-dong",
    }
    for personal in ("박서연", "1950", "올림픽로", "010-1234-5678"):
        assert personal not in str(view)


def test_a_destroyed_submission_gives_an_empty_card() -> None:
    assert card("case-1", False, None).view()["initials"] is None


def test_same_person_folds_spaces_and_case_and_needs_both_to_hold_the_data() -> None:
    a = {"patient": {"name": "Kim Min Jun", "birth_date": "1950-05-05"}}
    b = {"patient": {"name": "kimminjun", "birth_date": "1950-05-05"}}
    other_day = {"patient": {"name": "Kim Min Jun", "birth_date": "1950-05-06"}}
    destroyed = {"patient": {"name": None, "birth_date": None}}

    assert same_person(a, b)
    assert not same_person(a, other_day)
    assert not same_person(a, destroyed)
    assert not same_person(destroyed, destroyed)
