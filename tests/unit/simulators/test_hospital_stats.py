"""The simulated hospital's statistics follow each feed through the contract's FHIR Task
table (contracts/fhir_task.py): a referral whose path breaks it is counted once, with
its first illegal move, and shown."""

from __future__ import annotations

import time

from services.tools.simulators.cli import _exit_code, render_block
from services.tools.simulators.hospital import SimulatedHospital
from services.tools.simulators.hospital_io import Update
from services.tools.simulators.scenario import Mix, generate

HOSPITAL = "police-hospital"


def _hospital() -> tuple[SimulatedHospital, list[str]]:
    scripts = generate(2, Mix({"eligible": 1}), seed=7, run_id="stats")
    hospital = SimulatedHospital("127.0.0.1:1", HOSPITAL, scripts, seed=7, run_id="stats")
    return hospital, [s.referral_id for s in scripts]


def _update(referral_id: str, sequence: int, status: str, business: str) -> Update:
    data = {"referral_id": referral_id, "sequence": sequence, "status": status}
    data |= {"business_status": business, "case_id": f"case-{referral_id}"}
    return Update(referral_id, {"ce_id": f"{referral_id}/{sequence}"}, data, 0, sequence)


async def _feed(
    hospital: SimulatedHospital, referral_id: str, trail: list[tuple[str, str]]
) -> None:
    for sequence, (status, business) in enumerate(trail, start=1):
        # Business statuses no script reacts to: nothing is sent back.
        await hospital._on_update(
            _update(referral_id, sequence, status, f"t-{business}"), time.monotonic()
        )


async def test_a_legal_path_is_not_counted_an_illegal_one_is_counted_once() -> None:
    hospital, (good, bad) = _hospital()
    await _feed(
        hospital,
        good,
        [
            ("received", "r"),
            ("received", "t"),
            ("accepted", "a"),
            ("on-hold", "h"),
            ("accepted", "back"),
        ],
    )
    await _feed(
        hospital,
        bad,
        [("received", "r"), ("accepted", "a"), ("rejected", "x"), ("received", "again")],
    )
    stats = hospital.stats
    assert stats.illegal_paths == 1
    assert stats.tracks[good].illegal is None
    assert stats.tracks[bad].illegal == "#3: rejected may not follow accepted"
    summary = stats.summary()
    assert summary["illegal_paths"] == 1
    assert [i["referral_id"] for i in summary["illegal"]] == [bad]
    shown = "\n".join(render_block(stats, None))
    assert "illegal status paths (FHIR Task table) 1" in shown
    assert bad in shown
    assert _exit_code(stats) == 1


def test_the_demo_display_shows_how_far_delivery_went() -> None:
    hospital, _ = _hospital()
    stats = hospital.stats
    assert "delivery:" not in "\n".join(render_block(stats, None))
    stats.to_business_status["services-ordered"] = [4.0, 6.0]
    stats.to_business_status["services-started"] = [9.0]
    stats.to_business_status["services-delivered"] = [12.0]
    shown = "\n".join(render_block(stats, None))
    assert (
        "delivery: services-ordered 2 (p50 5.00s) · services-started 1 (p50 9.00s) · "
        "services-delivered 1 (p50 12.00s)"
    ) in shown
