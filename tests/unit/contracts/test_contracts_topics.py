"""Topic names: one pair per hospital, dead letters beside their source."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from contracts import topics


def test_referrals_topic_name() -> None:
    assert topics.referrals("police-hospital") == "hospital.police-hospital.referrals"


def test_updates_topic_name() -> None:
    assert topics.updates("police-hospital") == "hospital.police-hospital.updates"


def test_dead_letters_topic_name() -> None:
    assert (
        topics.dead_letters("hospital.police-hospital.referrals")
        == "hospital.police-hospital.referrals.dlq"
    )
    assert topics.dead_letters(topics.CASES) == "care.cases.dlq"


@pytest.mark.parametrize(
    "topic", ["hospital.police-hospital.referrals", "hospital.police-hospital.updates"]
)
def test_hospital_of_parses_the_hospital_from_its_topics(topic: str) -> None:
    assert topics.hospital_of(topic) == "police-hospital"


@pytest.mark.parametrize(
    "topic",
    [
        topics.CASES,
        "care.cases.dlq",
        "hospital.police-hospital.referrals.dlq",
        "hospital.police-hospital.other",
        "hospital.Police.referrals",
    ],
)
def test_hospital_of_returns_none_for_other_topics(topic: str) -> None:
    assert topics.hospital_of(topic) is None


@pytest.mark.parametrize(
    "hospital_id", ["", "a", "x" * 41, "Police-Hospital", "police_hospital", "police.hospital"]
)
@pytest.mark.parametrize("topic_of", [topics.referrals, topics.updates])
def test_invalid_hospital_id_raises(hospital_id: str, topic_of: Callable[[str], str]) -> None:
    with pytest.raises(ValueError, match="not a hospital id"):
        topic_of(hospital_id)


def test_all_topics_lists_each_hospitals_topics_once() -> None:
    specs = topics.all_topics(["b-hospital", "a-hospital", "a-hospital"])
    names = [s.name for s in specs]

    assert len(names) == len(set(names))
    assert topics.CASES in names
    for hospital_id in ("a-hospital", "b-hospital"):
        assert topics.referrals(hospital_id) in names
        assert topics.updates(hospital_id) in names
        assert topics.dead_letters(topics.referrals(hospital_id)) in names
