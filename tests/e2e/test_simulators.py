"""The simulators against the running system: a scripted hospital and instant
coordinators in one process drive ~30 referrals of the default mix to the end.
The coordinators work through the console's HTTP API, signed in as the session's
simulated accounts.

The session's system is shared with other tests (they publish to
hospital.police-hospital.*), so this test uses its own hospital and counts only
its own referral ids; its coordinators touch only its own referrals' tasks.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.tools.simulators.accounts import Account
from services.tools.simulators.hospital import HospitalStats, run_hospital
from services.tools.simulators.scenario import TERMINAL, Board, Mix
from services.tools.simulators.staff_loop import StaffStats, run_staff
from services.tools.stack import SystemInfo

pytestmark = pytest.mark.e2e

HOSPITAL = "kangbuk-samsung"
COUNT = 30


async def test_simulated_hospital_and_instant_staff_bring_every_referral_to_an_end(
    system_info: SystemInfo, staff_accounts: list[Account]
) -> None:
    board = Board()
    stop = asyncio.Event()
    staff = asyncio.create_task(
        run_staff(
            system_info.console,
            staff_accounts,
            stop=stop,
            board=board,
            only_scripted=True,
            delay=(0.0, 0.0),
        )
    )
    try:
        stats: HospitalStats = await run_hospital(
            system_info.kafka_bootstrap,
            HOSPITAL,
            rate=20,
            count=COUNT,
            mix=Mix(),
            board=board,
            run_id=f"e2e-{uuid.uuid4().hex[:8]}",
            timeout=90,
        )
    finally:
        stop.set()
        staff_stats: StaffStats = await staff

    unfinished = {rid: track.trail for rid, track in stats.tracks.items() if track.final is None}
    assert stats.sent == COUNT
    assert not unfinished, f"not terminal after {stats.elapsed:.0f}s: {unfinished}"
    assert not stats.timed_out
    for rid, track in stats.tracks.items():
        assert track.final in TERMINAL
        assert track.sequences == list(range(1, len(track.sequences) + 1)), (rid, track.sequences)
    assert stats.sequence_gaps == 0
    # Every referral's statuses keep the contract's FHIR Task table.
    assert stats.illegal_paths == 0, stats.summary()["illegal"]
    assert sum(stats.final_counts.values()) == stats.sent == COUNT
    assert set(stats.final_counts) >= {"completed", "cancelled", "failed", "rejected"}
    assert stats.dead_letters == 0
    assert staff_stats.errors == 0, staff_stats.last_error
    # Every kind of task was worked through the console, contact failures included.
    kinds = {key.split(":")[0] for key in staff_stats.done}
    assert kinds == {
        "review",
        "care-plan",
        "pre-discharge-visit",
        "post-discharge-visit",
        "delivery",
    }
    # Deliveries in full, in part, and of nothing (a could_not_deliver script).
    assert {"delivery:delivered", "delivery:could-not-deliver"} <= set(staff_stats.done)
    assert staff_stats.done["pre-discharge-visit:unreachable"] >= 1, staff_stats.done
    # With the scripts shared, every referral ends as its script says. (A person referred
    # again right after their case closed can be joined to the closed case when intake has
    # not yet read the closure; the hospital simulator waits a little to avoid that race.)
    not_as_scripted = [
        (t.script.summary(), t.trail)
        for t in stats.tracks.values()
        if t.final != t.script.expected_status and not t.joined_existing_case
    ]
    assert not_as_scripted == []
