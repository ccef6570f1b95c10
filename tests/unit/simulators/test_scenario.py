"""The simulators' referral mixes: pure, seeded, no servers."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime

import pytest
from faker.providers.person.ko_KR import Provider as KoreanNames

from contracts.hospital_v1 import CancelReason, ReferralSubmitted
from services.tools.simulators.scenario import (
    KINDS,
    SERVED_DISTRICTS,
    TERMINAL,
    Board,
    Mix,
    SubmissionBuilder,
    generate,
)

NOW = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize("count", [1, 7, 12, 13, 30, 31, 100, 997])
def test_mix_counts_add_up_to_the_count(count: int) -> None:
    counts = Mix().counts(count)
    assert sum(counts.values()) == count
    assert len(generate(count, seed=3)) == count


def test_explicit_counts_are_kept_exactly() -> None:
    mix = Mix.parse("eligible=10,cancelled=5,could-not-deliver=2")
    assert mix.counts(17) == {"eligible": 10, "cancelled": 5, "could_not_deliver": 2}
    scripts = generate(17, mix, seed=1)
    assert Counter(s.kind for s in scripts) == {
        "eligible": 10,
        "cancelled": 5,
        "could_not_deliver": 2,
    }


def test_cap_exhausted_comes_in_whole_same_person_chains() -> None:
    scripts = generate(40, Mix({"cap_exhausted": 1, "eligible": 1}), seed=5)
    chain = [s for s in scripts if s.kind == "cap_exhausted"]
    assert len(chain) % 3 == 0
    assert chain
    by_person: dict[str | None, list[str]] = {}
    for s in chain:
        by_person.setdefault(s.person, []).append(s.referral_id)
    for members in by_person.values():
        assert len(members) == 3
        linked = {s.referral_id: s.after for s in chain if s.referral_id in members}
        assert linked[members[0]] is None
        assert linked[members[1]] == members[0]
        assert linked[members[2]] == members[1]
    last = [s for s in chain if s.variant == "3/3"]
    assert all((s.expected_status, s.expected_reason) == ("failed", "cap-exhausted") for s in last)
    assert all(s.staff.plan_lines == (("short_term_facility", 14),) for s in chain)


def test_bad_mixes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        Mix.parse("elegible=3")
    with pytest.raises(ValueError, match="kind=weight"):
        Mix.parse("eligible")
    with pytest.raises(ValueError, match="positive"):
        Mix({"eligible": 0})


@pytest.mark.parametrize("count", [12, 20, 30])
def test_default_mix_reaches_every_terminal_status_and_every_kind(count: int) -> None:
    scripts = generate(count, seed=11)
    assert {s.expected_status for s in scripts} >= set(TERMINAL)
    assert {s.kind for s in scripts} == set(KINDS)


def test_every_kind_has_its_script() -> None:
    scripts = generate(200, seed=2)
    by_kind = {k: [s for s in scripts if s.kind == k] for k in KINDS}
    assert all(s.submission["priority"] == "urgent" for s in by_kind["urgent"])
    for s in by_kind["cancelled"]:
        (step,) = s.follow_ups
        assert step.action == "cancel"
        assert step.reason_code in set(CancelReason)
    assert {s.follow_ups[0].reason_code for s in by_kind["cancelled"]} == set(CancelReason)
    for s in by_kind["postponed"]:
        assert [f.action for f in s.follow_ups] == ["postpone", "return", "discharge"]
        postpone, back, _ = s.follow_ups
        assert postpone.days is not None
        assert postpone.days > 14
        assert back.days is not None
        assert back.days <= 14
    for s in by_kind["readmitted"]:
        assert [f.action for f in s.follow_ups] == ["discharge", "readmit", "discharge"]
    for s in by_kind["unreachable"]:
        # On hold as unreachable, the hospital discharges: no second discharge after that.
        assert s.staff.contact_failures == 3
        assert [(f.on, f.action, f.unless) for f in s.follow_ups] == [
            ("unreachable", "discharge", None),
            ("services-ordered", "discharge", "unreachable"),
        ]
        assert s.expected_status == "completed"
    assert all(s.staff.care_plan == "waitlist" for s in by_kind["waitlisted"])
    for s in by_kind["could_not_deliver"]:
        assert (s.variant, s.staff.care_plan, s.staff.delivery) in {
            ("plan", "could-not-deliver", "full"),
            ("delivery", "plan", "none"),
        }
    assert {s.variant for s in by_kind["could_not_deliver"]} == {"plan", "delivery"}
    partly = [s for s in by_kind["eligible"] if s.variant == "partly-delivered"]
    assert partly
    assert all(s.staff.delivery == "partial" for s in partly)
    assert all(s.expected_status == "completed" for s in partly)
    variants = Counter(s.variant for s in by_kind["ineligible"])
    assert set(variants) == {"age", "area", "consent", "review"}
    for s in by_kind["ineligible"]:
        if s.variant == "age":
            assert s.submission["age"] < 50
            assert not s.submission["registered_disability"]
        if s.variant == "consent":
            assert s.submission["consent"] is False


def test_the_same_seed_gives_the_same_scripts() -> None:
    assert generate(50, seed=42) == generate(50, seed=42)
    assert generate(50, seed=42) != generate(50, seed=43)
    assert generate(5, seed=42, run_id="a")[0].referral_id == "sim-a-00000"
    first = SubmissionBuilder("police-hospital", seed=9)
    second = SubmissionBuilder("police-hospital", seed=9)
    for script in generate(20, seed=9):
        assert first.build(script, NOW) == second.build(script, NOW)


def test_built_submissions_follow_the_contract() -> None:
    builder = SubmissionBuilder("kangbuk-samsung", seed=4)
    for script in generate(60, seed=4):
        data = builder.build(script, NOW)
        ReferralSubmitted.model_validate(data)
        assert data["referral_id"] == script.referral_id
        assert data["hospital_id"] == "kangbuk-samsung"


def test_personal_data_is_faker_ko_kr_and_never_in_what_is_shown() -> None:
    builder = SubmissionBuilder("police-hospital", seed=8)
    scripts = generate(60, seed=8)
    people: dict[str | None, set[tuple[str, str]]] = {}
    surnames = set(KoreanNames.last_names)
    for script in scripts:
        data = builder.build(script, NOW)
        patient = data["patient"]
        for name in (patient["name"], data["social_worker"]["name"]):
            assert re.fullmatch(r"[가-힣]{2,4}", name), name
            assert name[0] in surnames or name[:2] in surnames
        assert re.fullmatch(r"0\d{1,2}-\d{3,4}-\d{4}", patient["phone"])
        # Emails only on the reserved example domains: nobody real can be written to.
        assert data["social_worker"]["email"].rsplit("@", 1)[1] in {
            "example.com",
            "example.net",
            "example.org",
        }
        # Scripts carry no personal values: nothing to leak through boards or logs.
        shown = json.dumps([script.summary(), script.submission], ensure_ascii=False)
        for value in (patient["name"], patient["phone"], patient["birth_date"]):
            assert value not in shown
        people.setdefault(script.person or script.referral_id, set()).add(
            (patient["name"], patient["birth_date"])
        )
    # One person per script, except that a chain is one person throughout.
    assert all(len(p) == 1 for p in people.values())
    assert len({next(iter(p)) for p in people.values()}) == len(people)


def test_board_gates_a_task_until_the_hospital_has_seen_its_step() -> None:
    scripts = generate(100, seed=1)
    board = Board()
    board.publish("h", scripts)
    postponed = next(s for s in scripts if s.kind == "postponed")
    rid = postponed.referral_id
    assert board.gate_open("h", rid, "review")
    assert not board.gate_open("h", rid, "pre-discharge-visit")
    board.saw("h", rid, "pre-discharge-visit-scheduled")
    assert not board.gate_open("h", rid, "pre-discharge-visit")
    board.saw("h", rid, "pre-discharge-visit-scheduled")
    assert board.gate_open("h", rid, "pre-discharge-visit")
    assert board.script("other", rid) is None
    assert board.gate_open("h", "unknown", "review")


def test_district_puts_every_served_patient_in_that_district_and_leaves_outsiders_outside() -> None:
    scripts = generate(60, seed=11, district="Songpa-gu")
    districts = {s.submission.get("district") for s in scripts}
    assert "Songpa-gu" in districts
    assert all(d == "Songpa-gu" or d not in SERVED_DISTRICTS for d in districts)
    assert any(d not in SERVED_DISTRICTS for d in districts)  # the outside-area scripts


def test_board_tells_which_referral_a_case_is_the_first_referral_staying() -> None:
    board = Board()
    assert board.referral_of("case-1") is None
    board.link("case-1", "h", "ref-1")
    board.link("case-1", "other", "ref-2")  # a second hospital's referral joined the case
    assert board.referral_of("case-1") == ("h", "ref-1")
