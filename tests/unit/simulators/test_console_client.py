"""The coordinators' HTTP client against an in-memory console: the contract's shapes,
409s as Conflict, bounded retries only where repeating cannot act twice, signing in
again after a 401."""

from __future__ import annotations

import httpx
import pytest

from services.console.schemas import VisitResult
from services.lib.policy import load_findings
from services.tools.simulators.accounts import Account
from services.tools.simulators.console_client import (
    FINDINGS,
    NOTE,
    Conflict,
    ConsoleClient,
    NotFound,
    SignInRefused,
    Unavailable,
)
from tests.unit.simulators.fake_console import FakeConsole

URL = "http://console.test"
SONGPA = Account("sim-songpa-gu-1", "pw-1", "centre-songpa-gu")
OTHER = Account("kim", "pw-kim", "centre-songpa-gu")
GANGNAM = Account("sim-gangnam-gu-1", "pw-2", "centre-gangnam-gu")


@pytest.fixture
def console() -> FakeConsole:
    return FakeConsole({a.username: (a.password, a.centre_id) for a in (SONGPA, OTHER, GANGNAM)})


def client(console: FakeConsole, account: Account = SONGPA) -> ConsoleClient:
    return ConsoleClient(URL, account, transport=console.transport, backoff=0.001)


def down() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


async def test_the_queue_shows_the_centres_tasks_urgent_first(console: FakeConsole) -> None:
    console.add("review", "case-1", "centre-songpa-gu")
    console.add("review", "case-2", "centre-songpa-gu", priority="urgent")
    console.add("review", "case-3", "centre-gangnam-gu")
    async with client(console) as me:
        tasks = await me.queue()
    assert [t.case_id for t in tasks] == ["case-2", "case-1"]
    assert tasks[0].service == "referral"
    assert tasks[0].status == "open"


async def test_claim_and_complete_each_kind_with_its_result(console: FakeConsole) -> None:
    review = console.add("review", "case-1", "centre-songpa-gu")
    plan = console.add("care-plan", "case-1", "centre-songpa-gu")
    visit = console.add("pre-discharge-visit", "case-1", "centre-songpa-gu")
    async with client(console) as me:
        tasks = {t.kind: t for t in await me.queue()}
        done = await me.review(await me.claim(tasks["review"]), "ineligible", "can-manage-alone")
        assert done.outcome == "reviewed"
        planned = await me.care_plan(await me.claim(tasks["care-plan"]), [("meal_delivery", 10)])
        assert planned.details["outcome"] == "plan"
        visited = await me.visit(await me.claim(tasks["pre-discharge-visit"]))
        assert visited.outcome == "visited"
    assert review.result == {"decision": "ineligible", "reason_code": "can-manage-alone"}
    assert plan.result == {
        "decision": "plan",
        "lines": [{"service": "meal_delivery", "quantity": 10}],
    }
    assert visit.status == "done"


async def test_a_visit_sends_codes_of_the_findings_vocabulary_and_a_note(
    console: FakeConsole,
) -> None:
    vocabulary = load_findings()
    pre = console.add("pre-discharge-visit", "case-1", "centre-songpa-gu")
    post = console.add("post-discharge-visit", "case-2", "centre-songpa-gu")
    async with client(console) as me:
        tasks = {t.kind: t for t in await me.queue()}
        await me.visit(await me.claim(tasks["pre-discharge-visit"]))
        await me.visit(
            await me.claim(tasks["post-discharge-visit"]), findings=["fall-risk"], notes=None
        )
    assert pre.result is not None
    assert pre.result["findings"] == list(FINDINGS["pre-discharge-visit"])
    assert pre.result["notes"] == NOTE
    assert post.result == {
        "reached": True,
        "precautions_acknowledged": True,
        "findings": ["fall-risk"],
        "notes": None,
    }
    for kind, codes in FINDINGS.items():
        assert codes, kind
        assert vocabulary.unknown(codes) == (), kind
    # What the console's API would take.
    VisitResult.model_validate(pre.result)


async def test_someone_elses_claim_is_a_conflict(console: FakeConsole) -> None:
    console.add("review", "case-1", "centre-songpa-gu")
    async with client(console, OTHER) as kim, client(console) as me:
        (task,) = await me.queue()
        await kim.claim(task)
        with pytest.raises(Conflict) as taken:
            await me.claim(task)
        assert taken.value.code == "claimed-by-other"
        with pytest.raises(Conflict) as not_ours:
            await me.visit(task)
        assert not_ours.value.code == "not-claimed"


async def test_another_centres_task_does_not_exist(console: FakeConsole) -> None:
    console.add("review", "case-1", "centre-gangnam-gu")
    async with client(console, GANGNAM) as gangnam, client(console) as me:
        (task,) = await gangnam.queue()
        with pytest.raises(NotFound):
            await me.claim(task)


async def test_a_wrong_password_is_refused_at_once(console: FakeConsole) -> None:
    with pytest.raises(SignInRefused):
        async with client(console, Account(SONGPA.username, "wrong", SONGPA.centre_id)):
            pass
    assert console.requests == [("POST", "/api/login")]  # not retried


async def test_connection_errors_are_retried_a_bounded_number_of_times(
    console: FakeConsole,
) -> None:
    console.add("review", "case-1", "centre-songpa-gu")
    async with client(console) as me:
        console.fail("GET", "/api/queue", down())
        console.fail("GET", "/api/queue", httpx.ReadTimeout("slow"))
        console.fail("GET", "/api/queue", 502)
        assert len(await me.queue()) == 1
        for _ in range(4):
            console.fail("GET", "/api/queue", down())
        with pytest.raises(Unavailable):
            await me.queue()
    assert console.requests.count(("GET", "/api/queue")) == 4 + 4


async def test_an_action_whose_answer_was_lost_is_not_repeated(console: FakeConsole) -> None:
    task = console.add("pre-discharge-visit", "case-1", "centre-songpa-gu")

    def completions() -> int:
        return sum(1 for method, path in console.requests if path.endswith("/complete"))

    async with client(console) as me:
        (listed,) = await me.queue()
        claimed = await me.claim(listed)
        # Refused before it left: repeated.
        console.fail("POST", "/complete", down())
        assert (await me.contact_failed(claimed)).outcome == "contact-failed"
        assert completions() == 2
        # Cut after it may have arrived: not repeated (the caller looks at the queue again).
        console.fail("POST", "/complete", httpx.ReadError("connection reset"))
        with pytest.raises(Unavailable):
            await me.contact_failed(claimed)
        assert completions() == 3
        # A 500 may have done it: not repeated; a 503 promises nothing was done: repeated.
        console.fail("POST", "/complete", 500)
        with pytest.raises(Unavailable):
            await me.contact_failed(claimed)
        assert completions() == 4
        console.fail("POST", "/complete", 503)
        assert (await me.contact_failed(claimed)).outcome == "contact-failed"
        assert completions() == 6
        assert (await me.contact_failed(claimed)).outcome == "unreachable"
    assert task.attempts == 3
    assert task.status == "suspended"


async def test_a_lost_session_signs_in_again_once(console: FakeConsole) -> None:
    console.add("review", "case-1", "centre-songpa-gu")
    async with client(console) as me:
        console.forget_sessions()
        assert len(await me.queue()) == 1
    assert console.requests.count(("POST", "/api/login")) == 2


async def test_an_account_of_another_centre_than_expected_is_refused(
    console: FakeConsole,
) -> None:
    with pytest.raises(SignInRefused):
        async with client(console, Account(SONGPA.username, SONGPA.password, "centre-jung-gu")):
            pass


def test_an_empty_console_address_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        ConsoleClient("", SONGPA)
