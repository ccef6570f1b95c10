"""The simulated coordinators' loop against an in-memory console: pools per centre,
every kind of task worked with its result, 409s and lost connections moved past,
people's claims left alone, a task one of ours already holds finished by that one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx

from services.tools.simulators.accounts import Account
from services.tools.simulators.console_client import Task
from services.tools.simulators.scenario import Board, Decisions, Script, generate
from services.tools.simulators.staff_loop import StaffStats, run_staff, scripted
from tests.unit.simulators.fake_console import FakeConsole, FakeTask

URL = "http://console.test"
SONGPA = [Account(f"sim-songpa-gu-{n}", f"pw-s{n}", "centre-songpa-gu") for n in (1, 2, 3)]
GANGNAM = [Account("sim-gangnam-gu-1", "pw-g1", "centre-gangnam-gu")]
PERSON = Account("kim", "pw-kim", "centre-songpa-gu")


def fake() -> FakeConsole:
    return FakeConsole({a.username: (a.password, a.centre_id) for a in [*SONGPA, *GANGNAM, PERSON]})


async def work(
    console: FakeConsole,
    until: Callable[[], bool],
    *,
    accounts: list[Account] | None = None,
    timeout: float = 10.0,
    **options: object,
) -> StaffStats:
    stop = asyncio.Event()
    staff = asyncio.create_task(
        run_staff(
            URL,
            accounts or [*SONGPA, *GANGNAM],
            stop=stop,
            delay=(0.0, 0.0),
            poll_interval=0.01,
            transport=console.transport,
            **options,  # type: ignore[arg-type]
        )
    )
    deadline = asyncio.get_running_loop().time() + timeout
    while not until() and asyncio.get_running_loop().time() < deadline and not staff.done():  # noqa: ASYNC110 (the fake has no event to wait on)
        await asyncio.sleep(0.01)
    stop.set()
    return await staff


def closed(*tasks: FakeTask) -> Callable[[], bool]:
    return lambda: all(t.status in ("done", "suspended", "cancelled") for t in tasks)


async def test_every_kind_is_worked_in_each_centre_by_that_centres_coordinators() -> None:
    console = fake()
    tasks = [
        console.add(kind, f"case-{centre}-{kind}", centre)
        for centre in ("centre-songpa-gu", "centre-gangnam-gu")
        for kind in ("review", "care-plan", "pre-discharge-visit", "post-discharge-visit")
    ]
    stats = await work(console, closed(*tasks))
    assert all(t.status == "done" for t in tasks)
    for task in tasks:
        centre = task.centre_id.removeprefix("centre-")
        assert task.completed_by is not None
        assert task.completed_by.startswith(f"sim-{centre}-")
    assert stats.errors == 0
    assert stats.tasks_done == 8
    assert stats.done["review:eligible"] == 2
    assert stats.done["pre-discharge-visit:visited"] == 2
    assert stats.coordinators == 4
    by_kind = {t.kind: t.result for t in tasks if t.centre_id == "centre-songpa-gu"}
    assert by_kind["review"] == {"decision": "eligible", "reason_code": None}
    assert by_kind["care-plan"] == {"decision": "plan", "lines": None}


async def test_two_of_ours_never_reach_for_the_same_task() -> None:
    console = fake()
    tasks = [console.add("review", f"case-{n}", "centre-songpa-gu") for n in range(30)]
    stats = await work(console, closed(*tasks), accounts=SONGPA)
    claims = [task_id for _, action, task_id in console.actions if action == "claim"]
    assert sorted(claims) == sorted(t.id for t in tasks)  # one claim each
    assert len({t.completed_by for t in tasks}) == len(SONGPA)  # the pool shared the work
    assert stats.skipped == {}


async def test_a_task_someone_else_claims_first_is_left_and_the_rest_goes_on() -> None:
    console = fake()
    first = console.add("review", "case-1", "centre-songpa-gu", priority="urgent")
    second = console.add("review", "case-2", "centre-songpa-gu")
    # Between our listing and our claim, a person takes the first task.
    console.fail("POST", f"/referral/{first.id}/claim", 409)
    stats = await work(console, closed(second), accounts=SONGPA[:1])
    assert second.status == "done"
    assert stats.skipped["injected"] == 1
    assert stats.errors == 0
    # Still open after the conflict (our fault injection took nobody's claim): worked later.
    await work(console, closed(first), accounts=SONGPA[:1])
    assert first.status == "done"


async def test_a_persons_live_claim_is_left_alone_an_expired_one_taken_over() -> None:
    console = fake()
    now = datetime.now(UTC)
    held = console.add(
        "review",
        "case-1",
        "centre-songpa-gu",
        status="claimed",
        claimed_by=PERSON.username,
        lease_until=now + timedelta(minutes=20),
    )
    lapsed = console.add(
        "review",
        "case-2",
        "centre-songpa-gu",
        status="claimed",
        claimed_by=PERSON.username,
        lease_until=now - timedelta(minutes=1),
    )
    stats = await work(console, closed(lapsed), accounts=SONGPA)
    assert lapsed.status == "done"
    assert held.status == "claimed"
    assert held.claimed_by == PERSON.username
    assert stats.errors == 0


async def test_a_task_one_of_ours_holds_is_finished_by_that_coordinator() -> None:
    console = fake()
    leftover = console.add(
        "post-discharge-visit",
        "case-1",
        "centre-songpa-gu",
        status="claimed",
        claimed_by=SONGPA[2].username,
        lease_until=datetime.now(UTC) + timedelta(minutes=20),
    )
    await work(console, closed(leftover), accounts=SONGPA)
    assert leftover.status == "done"
    assert leftover.completed_by == SONGPA[2].username


async def test_the_console_down_for_a_while_is_counted_and_outlived() -> None:
    console = fake()
    task = console.add("review", "case-1", "centre-songpa-gu")
    for _ in range(8):  # two listings' worth of bounded retries
        console.fail("GET", "/api/queue", httpx.ConnectError("refused"))
    console.fail("POST", "/complete", 500)  # the first completion fails on the server
    stats = await work(console, closed(task), accounts=SONGPA[:1])
    assert task.status == "done"
    assert stats.errors >= 2
    assert stats.last_error is not None
    assert "task" in stats.last_error


def _script(kind: str) -> Script:
    return next(s for s in generate(40, seed=5, run_id="t") if s.kind == kind)


async def test_scripted_referrals_follow_their_scripts_others_wait_or_take_the_plain_path() -> None:
    console = fake()
    board = Board()
    unreachable, waitlisted = _script("unreachable"), _script("waitlisted")
    board.publish("h", [unreachable, waitlisted])
    board.link("case-u", "h", unreachable.referral_id)
    board.link("case-w", "h", waitlisted.referral_id)
    visit = console.add("pre-discharge-visit", "case-u", "centre-songpa-gu")
    plan = console.add("care-plan", "case-w", "centre-songpa-gu")
    # Not on the board, created just now: perhaps a scripted referral whose update is late.
    stranger = console.add("review", "case-x", "centre-songpa-gu")
    stats = await work(
        console, closed(visit, plan), accounts=SONGPA, board=board, only_scripted=False
    )
    assert visit.status == "suspended"
    assert visit.attempts == 3
    assert stats.done["pre-discharge-visit:contact-failed"] == 3
    assert stats.done["pre-discharge-visit:unreachable"] == 1
    assert plan.status == "done"  # waitlisted once, then planned
    assert [a for _, a, t in console.actions if t == plan.id].count("complete:waitlisted") == 1
    assert stranger.status == "open"


def test_only_scripted_leaves_unknown_cases_and_gates_hold_tasks_back() -> None:
    board = Board()
    postponed = _script("postponed")
    board.publish("h", [postponed])
    board.link("case-p", "h", postponed.referral_id)
    old = datetime.now(UTC) - timedelta(minutes=5)

    def task(kind: str, case_id: str) -> Task:
        return Task("scheduling", 1, kind, case_id, "c", "routine", old, "open", created_at=old)

    only = scripted(board, only_scripted=True)
    shared = scripted(board, only_scripted=False)
    assert only(task("review", "case-x")) is None
    assert shared(task("review", "case-x")) == Decisions()  # long unknown: another's referral
    assert only(task("pre-discharge-visit", "case-p")) is None  # gate: not seen twice yet
    board.saw("h", postponed.referral_id, "pre-discharge-visit-scheduled")
    board.saw("h", postponed.referral_id, "pre-discharge-visit-scheduled")
    assert only(task("pre-discharge-visit", "case-p")) == postponed.staff
