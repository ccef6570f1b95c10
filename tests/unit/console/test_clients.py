"""How the console calls a service (no servers: httpx's MockTransport plays the
service): reads are tried again, actions never blindly; a service's errors are
passed on; one that cannot answer is a 503 naming it."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from services.console.clients import OnBehalfOf, ServiceClient
from services.console.errors import ConsoleError
from services.lib.runtime.callers import ACTOR_HEADER, CENTRE_HEADER, ROLE_HEADER, Callers

WHO = OnBehalfOf(username="songpa", centre_id="centre-songpa-gu", role="lead")
TOKEN = "t" * 43


def client(handler: httpx.MockTransport, retries: int = 2) -> ServiceClient:
    return ServiceClient(
        "referral", "http://referral", TOKEN, timeout_s=1, read_retries=retries, transport=handler
    )


def service(
    *answers: httpx.Response | Exception,
) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A fake service giving these answers in turn (an exception is raised instead)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handle), seen


async def test_a_read_is_tried_again_after_a_5xx_or_a_lost_connection() -> None:
    transport, seen = service(
        httpx.Response(503, json={"error": "x", "message": "x"}),
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"tasks": []}),
    )
    answer = await client(transport).get("/v1/queue", WHO, {"kind": "review"})
    assert answer == {"tasks": []}
    assert len(seen) == 3
    sent = seen[0]
    assert sent.headers["authorization"] == f"Bearer {TOKEN}"
    assert (sent.headers[ACTOR_HEADER], sent.headers[CENTRE_HEADER], sent.headers[ROLE_HEADER]) == (
        "songpa",
        "centre-songpa-gu",
        "lead",
    )
    assert sent.url.params["kind"] == "review"


async def test_a_read_that_keeps_failing_is_a_503_naming_the_service() -> None:
    transport, seen = service(httpx.ReadTimeout("slow"))
    with pytest.raises(ConsoleError) as caught:
        await client(transport, retries=2).get("/v1/queue", WHO)
    assert (caught.value.status, caught.value.code) == (503, "service-unavailable")
    assert caught.value.message.startswith("referral ")
    assert len(seen) == 3


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (httpx.ConnectError("refused"), "nothing was done"),
        (httpx.ReadTimeout("slow"), "may or may not have been done"),
    ],
)
async def test_an_action_is_sent_once(failure: Exception, says: str) -> None:
    transport, seen = service(failure, httpx.Response(200, json={}))
    with pytest.raises(ConsoleError) as caught:
        await client(transport).post("/v1/tasks/1/claim", WHO)
    assert caught.value.status == 503
    assert "referral" in caught.value.message
    assert says in caught.value.message
    assert len(seen) == 1, "an action is never sent again blindly"


async def test_an_action_answered_503_is_not_repeated() -> None:
    transport, seen = service(httpx.Response(503), httpx.Response(200, json={}))
    with pytest.raises(ConsoleError) as caught:
        await client(transport).post("/v1/tasks/1/complete", WHO, {"decision": "eligible"})
    assert (caught.value.status, caught.value.code) == (503, "service-unavailable")
    assert len(seen) == 1


async def test_the_services_own_errors_are_passed_on() -> None:
    transport, seen = service(
        httpx.Response(409, json={"error": "claimed-by-other", "message": "task 1 is claimed"})
    )
    with pytest.raises(ConsoleError) as caught:
        await client(transport).post("/v1/tasks/1/claim", WHO)
    assert (caught.value.status, caught.value.code) == (409, "claimed-by-other")
    assert caught.value.message == "task 1 is claimed"
    assert len(seen) == 1


async def test_a_refused_console_credential_is_the_operators_problem_not_the_users() -> None:
    # 401 to a coordinator would mean "sign in again"; it is the console's token that failed.
    transport, _ = service(httpx.Response(401, json={"error": "unauthorized", "message": "no"}))
    with pytest.raises(ConsoleError) as caught:
        await client(transport).get("/v1/queue", WHO)
    assert (caught.value.status, caught.value.code) == (503, "service-unavailable")
    assert "CARELINK_CONSOLE_API_TOKEN" in caught.value.message


def test_callers_are_recognised_by_their_token_only() -> None:
    callers = Callers({"console": SecretStr(TOKEN), "portal": SecretStr("p" * 20)})
    assert callers.configured
    assert callers.caller(f"Bearer {TOKEN}") == "console"
    assert callers.caller(f"bearer {'p' * 20}") == "portal"
    for header in (None, "", "Bearer", "Bearer ", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN):
        assert callers.caller(header) is None, header
    # Nothing configured: nobody gets in, whatever they send.
    assert not Callers({}).configured
    assert Callers({}).caller(f"Bearer {TOKEN}") is None
    # A token too short to be secret is refused, not accepted.
    assert Callers({"weak": SecretStr("short")}).caller("Bearer short") is None
