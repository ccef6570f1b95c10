"""`carelink outbox set-aside` and `carelink outbox requeue` against a real PostgreSQL
(and, for the last test, a real broker and relay).

Each test has its own database with the runtime's migrations; rows are written straight
into its outbox in the three states a row can be in: published, waiting, set aside.
The commands run in-process through `main(argv)` in a worker thread (each runs its own
event loop), reading a system.json that names only that database.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from services.lib.runtime import outbox
from services.lib.runtime.metrics import sample_outbox
from services.tools.cli import main as cli
from services.tools.localinfra import Endpoints
from tests.integration.runtime_helpers import (
    migrated_database,
    new_topic,
    pool_for,
    read_records,
    running_relay,
    wait_until,
)

pytestmark = pytest.mark.integration

SERVICE = "outcome"
# A value no output may contain: set-aside rows may be dead letters of hospital records.
SECRET = b"personal-value-never-printed"


async def _write(conn: asyncpg.Connection, topic: str, value: bytes, state: str) -> int:
    row_id: int = await conn.fetchval(
        """INSERT INTO outbox (topic, key, value, published_at, failed_at, error)
           VALUES ($1, 'case-1', $2,
                   CASE WHEN $3 = 'published' THEN now() END,
                   CASE WHEN $3 = 'set aside' THEN now() END,
                   CASE WHEN $3 = 'set aside' THEN 'MessageSizeTooLargeError: too big' END)
           RETURNING id""",
        topic,
        value,
        state,
    )
    return row_id


async def _states(url: str) -> dict[int, tuple[str, str | None]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id, published_at, failed_at, error FROM outbox")
    finally:
        await conn.close()

    def state(row: asyncpg.Record) -> str:
        if row["published_at"] is not None:
            return "published"
        return "set aside" if row["failed_at"] is not None else "waiting"

    return {r["id"]: (state(r), r["error"]) for r in rows}


@pytest.fixture
async def database(endpoints: Endpoints, tmp_path: Path) -> dict[str, Any]:
    """A migrated database with one published, one waiting and two set-aside rows."""
    url = await migrated_database(endpoints, tmp_path)
    conn = await asyncpg.connect(url)
    try:
        ids = {
            "published": await _write(conn, "t.one", b"p", "published"),
            "waiting": await _write(conn, "t.one", b"w", "waiting"),
            "aside1": await _write(conn, "t.one", SECRET, "set aside"),
            "aside2": await _write(conn, "t.two", SECRET + b"2", "set aside"),
        }
    finally:
        await conn.close()
    system = tmp_path / "system.json"
    system.write_text(json.dumps({"databases": {SERVICE: url}}))
    return {"url": url, "ids": ids, "system": system}


async def carelink(
    capsys: pytest.CaptureFixture[str], system: Path, *argv: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, [*argv, "--system", str(system)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def test_set_aside_lists_the_rows_with_their_error_and_never_their_value(
    database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = database["ids"]
    code, out, err = await carelink(capsys, database["system"], "outbox", "set-aside", "--json")
    assert code == cli.EXIT_OK, err
    rows = json.loads(out)["set_aside"]
    assert [r["id"] for r in rows] == [ids["aside1"], ids["aside2"]]
    assert {r["service"] for r in rows} == {SERVICE}
    assert rows[0]["topic"] == "t.one"
    assert rows[0]["size"] == len(SECRET)
    assert rows[0]["error"].startswith("MessageSizeTooLargeError")

    code, text, _ = await carelink(capsys, database["system"], "outbox", "set-aside")
    assert code == cli.EXIT_OK
    assert "MessageSizeTooLargeError" in text
    for shown in (out, text):
        assert SECRET.decode() not in shown

    # The backlog command counts them too, and exits 1 while any is set aside.
    code, out, _ = await carelink(capsys, database["system"], "outbox", "--json")
    assert code == cli.EXIT_PROBLEM
    [backlog] = [r for r in json.loads(out)["services"] if r["service"] == SERVICE]
    assert (backlog["unpublished"], backlog["set_aside"]) == (1, 2)


async def test_requeue_one_row_by_id_leaves_the_others_and_keeps_its_error(
    database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = database["ids"]
    code, out, err = await carelink(
        capsys,
        database["system"],
        "outbox",
        "requeue",
        "--service",
        SERVICE,
        "--id",
        str(ids["aside1"]),
        "--json",
    )
    assert code == cli.EXIT_OK, err
    assert [(r["id"], r["action"]) for r in json.loads(out)["rows"]] == [
        (ids["aside1"], "requeued")
    ]
    states = await _states(database["url"])
    assert states[ids["aside1"]] == ("waiting", "MessageSizeTooLargeError: too big")
    assert states[ids["aside2"]][0] == "set aside"
    assert states[ids["published"]][0] == "published"
    assert states[ids["waiting"]][0] == "waiting"

    # The gauges the alerts read follow at the next scrape.
    async with pool_for(database["url"]) as pool, pool.acquire() as conn:
        await sample_outbox(conn, "requeue-test")
    labels = {"service": "requeue-test"}
    assert REGISTRY.get_sample_value("carelink_outbox_backlog", labels) == 2
    assert REGISTRY.get_sample_value("carelink_outbox_set_aside", labels) == 1
    age = REGISTRY.get_sample_value("carelink_outbox_oldest_age_seconds", labels)
    assert age is not None
    assert 0 <= age < 600


async def test_requeue_of_a_row_that_is_not_set_aside_changes_nothing_and_exits_4(
    database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = database["ids"]
    before = await _states(database["url"])
    for row_id in (ids["published"], ids["waiting"], 999_999):
        code, out, _ = await carelink(
            capsys,
            database["system"],
            "outbox",
            "requeue",
            "--service",
            SERVICE,
            "--id",
            str(row_id),
        )
        assert code == cli.EXIT_NOT_FOUND, row_id
        assert "not set aside" in out
    assert await _states(database["url"]) == before


async def test_requeue_all_with_dry_run_first_then_for_real_then_nothing_left(
    database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    ids = database["ids"]
    before = await _states(database["url"])
    argv = ("outbox", "requeue", "--service", SERVICE, "--all")

    code, out, _ = await carelink(capsys, database["system"], *argv, "--dry-run", "--json")
    assert code == cli.EXIT_OK
    assert [r["action"] for r in json.loads(out)["rows"]] == ["would requeue"] * 2
    assert await _states(database["url"]) == before

    code, out, _ = await carelink(capsys, database["system"], *argv)
    assert code == cli.EXIT_OK
    assert out.count("requeued") == 2
    assert SECRET.decode() not in out
    states = await _states(database["url"])
    assert states[ids["aside1"]][0] == states[ids["aside2"]][0] == "waiting"

    code, out, _ = await carelink(capsys, database["system"], *argv)
    assert code == cli.EXIT_OK
    assert "no set-aside outbox rows" in out


async def test_requeue_needs_all_or_ids_and_a_known_service(
    database: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    system = database["system"]
    bad = [
        ("outbox", "requeue", "--service", SERVICE),
        ("outbox", "requeue", "--service", SERVICE, "--all", "--id", "1"),
        ("outbox", "requeue", "--service", "console", "--all"),
        ("outbox", "requeue", "--all"),
    ]
    for argv in bad:
        code, _, _ = await carelink(capsys, system, *argv)
        assert code == cli.EXIT_USAGE, argv
    # A service the system file has no database for: cannot be reached.
    code, _, err = await carelink(
        capsys, system, "outbox", "requeue", "--service", "intake", "--all"
    )
    assert code == cli.EXIT_UNREACHABLE
    assert "CARELINK_INTAKE_DATABASE_URL" in err


async def test_a_requeued_row_is_published_by_the_running_relay_at_once(
    endpoints: Endpoints, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole loop on a real broker: a set-aside row stays put while the relay runs;
    requeued, it is published without waiting for the relay's poll (NOTIFY wakes it)."""
    url = await migrated_database(endpoints, tmp_path)
    topic = await new_topic(endpoints)
    system = tmp_path / "system.json"
    system.write_text(json.dumps({"databases": {SERVICE: url}}))
    async with pool_for(url) as pool:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, topic=topic, key=b"k", value=b"first", headers=[])
            await outbox.enqueue(conn, topic=topic, key=b"k", value=b"second", headers=[])
            # As the relay leaves a row the broker refused for good.
            await conn.execute(
                "UPDATE outbox SET failed_at = now(), error = 'TopicAuthorizationFailedError'"
                " WHERE value = 'first'"
            )
        async with running_relay(endpoints, url, poll_interval_s=60) as relay:
            await relay.wait_active()
            [second] = await read_records(endpoints, topic, 1, linger=1.0)
            assert second.value == b"second"
            states = await _states(url)
            assert sorted(s for s, _ in states.values()) == ["published", "set aside"]

            started = time.monotonic()
            code, out, err = await carelink(
                capsys, system, "outbox", "requeue", "--service", SERVICE, "--all"
            )
            assert code == cli.EXIT_OK, err
            assert "requeued" in out

            async def all_published() -> bool:
                return all(s == "published" for s, _ in (await _states(url)).values())

            await wait_until(all_published, timeout=15, what="the requeued row published")
            # Well under the 60 s poll: the relay was woken by the requeue's NOTIFY.
            assert time.monotonic() - started < 30
        records = await read_records(endpoints, topic, 2)
    assert [r.value for r in records] == [b"second", b"first"]
