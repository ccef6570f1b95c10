"""A store that has seen `cases` referrals: synthetic rows, bulk-loaded with COPY.

What is loaded, per stored case (everything intake's and outcome's hot path
touches, and the inbox of every service):

| database | table | rows per case | shape |
|---|---|---|---|
| intake | persons, cases, referrals | 1 each | 10% of cases open; a fake submission (jsonb) of a real one's size |
| intake | outbox | 2 | published `received`/`accepted`-sized records |
| outcome | cases, referrals | 1 each | closed cases, sequence 10 |
| outcome | outbox | 1 | a published update-sized record |
| referral | cases, tasks, plans | 1, 2, 1 | closed cases, done tasks |
| scheduling | cases, tasks | 1, 2 | closed cases, done visits |
| every service | inbox | `inbox_per_case` | handled events |

Keys are uuid-shaped and spread evenly over the key space, generated in
ascending order: new random keys land among them as they would among real ones,
and the load appends to the indexes instead of splitting pages at random (so
indexes come out compact, as after a REINDEX). Then VACUUM ANALYZE, so the
measurement does not share the machine with autovacuum's first pass, and a
CHECKPOINT, so it does not pay for the load's writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.tools.bench.progress import Ticker, say

CHUNK = 50_000
HOSPITALS = (
    "police-hospital",
    "kangbuk-samsung",
    "konkuk-university",
    "seoul-national-university",
    "severance",
)
CENTRES = ("centre-songpa-gu", "centre-gangnam-gu", "centre-jongno-gu", "centre-guro-gu")

Row = tuple[Any, ...]


def spread_uuid(i: int, total: int, salt: int) -> str:
    """The i-th of `total` uuid-shaped keys spread evenly (ascending) over the key space."""
    step = (1 << 128) // max(total, 1)
    value = i * step + (salt % step)
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Synthetic:
    """The rows of one case, derived from its index (no personal data: a fixed fake
    submission with the referral's ids)."""

    def __init__(self, cases: int, submission: dict[str, Any], event_bytes: int) -> None:
        self.cases = cases
        self.salt = int.from_bytes(os.urandom(8), "big")
        self.now = datetime.now(UTC)
        self.submission = submission
        self.event_value = json.dumps({"padding": "x" * max(0, event_bytes - 20)}).encode()
        self.headers = json.dumps([["ce_specversion", "MS4w"], ["ce_type", "Y2FzZQ=="]])

    def case_id(self, i: int) -> str:
        return "case-" + spread_uuid(i, self.cases, self.salt)

    def referral_id(self, i: int) -> str:
        return "ref-" + spread_uuid(i, self.cases, self.salt ^ 0x5A5A)

    def person_id(self, i: int) -> str:
        return "person-" + spread_uuid(i, self.cases, self.salt ^ 0xA5A5)

    def hospital(self, i: int) -> str:
        return HOSPITALS[i % len(HOSPITALS)]

    def at(self, i: int) -> datetime:
        # Spread over the past year, oldest first.
        return self.now - timedelta(seconds=(self.cases - i) * 31_536_000 / self.cases)

    def submission_text(self, i: int) -> str:
        return json.dumps(
            {
                **self.submission,
                "referral_id": self.referral_id(i),
                "hospital_id": self.hospital(i),
            },
            ensure_ascii=False,
        )


def _table_specs(
    s: Synthetic, inbox_per_case: int
) -> dict[str, list[tuple[str, Sequence[str], int, Callable[[int], Iterator[Row]]]]]:
    """database -> [(table, columns, rows, rows(start index) generator)]."""
    n = s.cases

    def per_case(make: Callable[[int], Row]) -> Callable[[int], Iterator[Row]]:
        def rows(start: int) -> Iterator[Row]:
            for i in range(start, min(start + CHUNK, n)):
                yield make(i)

        return rows

    def many(k: int, make: Callable[[int, int], Row]) -> Callable[[int], Iterator[Row]]:
        def rows(start: int) -> Iterator[Row]:
            for j in range(start, min(start + CHUNK, n * k)):
                yield make(j // k, j)

        return rows

    def inbox(consumer: str) -> tuple[str, Sequence[str], int, Callable[[int], Iterator[Row]]]:
        total = n * inbox_per_case
        salt = s.salt ^ hash(consumer)
        return (
            "inbox",
            ("consumer", "event_id", "status", "handled_at"),
            total,
            many(
                inbox_per_case,
                lambda i, j: (consumer, spread_uuid(j, total, salt), "handled", s.at(i)),
            ),
        )

    def outbox(k: int, topic: Callable[[int], str], key: Callable[[int], bytes]) -> Any:
        return (
            "outbox",
            ("topic", "key", "value", "headers", "created_at", "published_at"),
            n * k,
            many(k, lambda i, j: (topic(i), key(i), s.event_value, s.headers, s.at(i), s.at(i))),
        )

    return {
        "intake": [
            (
                "persons",
                ("patient_key", "person_id", "created_at"),
                n,
                per_case(
                    lambda i: (
                        spread_uuid(i, n, s.salt ^ 0x77).replace("-", "") * 2,
                        s.person_id(i),
                        s.at(i),
                    )
                ),
            ),
            (
                "cases",
                ("case_id", "person_id", "open", "discharged", "created_at"),
                n,
                per_case(
                    lambda i: (s.case_id(i), s.person_id(i), i % 10 == 0, i % 10 != 0, s.at(i))
                ),
            ),
            (
                "referrals",
                (
                    "hospital_id",
                    "referral_id",
                    "case_id",
                    "content_hash",
                    "outcome",
                    "submission",
                    "received_at",
                ),
                n,
                per_case(
                    lambda i: (
                        s.hospital(i),
                        s.referral_id(i),
                        s.case_id(i),
                        spread_uuid(i, n, s.salt).replace("-", "") * 2,
                        "accepted",
                        s.submission_text(i),
                        s.at(i),
                    )
                ),
            ),
            inbox("intake"),
            outbox(2, lambda i: "care.cases", lambda i: s.case_id(i).encode()),
        ],
        "outcome": [
            (
                "cases",
                ("case_id", "status", "business_status", "details", "updated_at"),
                n,
                per_case(lambda i: (s.case_id(i), "completed", "closed", "{}", s.at(i))),
            ),
            (
                "referrals",
                ("hospital_id", "referral_id", "case_id", "sequence"),
                n,
                per_case(lambda i: (s.hospital(i), s.referral_id(i), s.case_id(i), 10)),
            ),
            inbox("outcome"),
            outbox(
                1,
                lambda i: f"hospital.{s.hospital(i)}.updates",
                lambda i: s.referral_id(i).encode(),
            ),
        ],
        "referral": [
            (
                "cases",
                (
                    "case_id",
                    "hospital_id",
                    "referral_id",
                    "person_id",
                    "centre_id",
                    "policy_year",
                    "fee_support",
                    "priority",
                    "requested_services",
                    "closed",
                ),
                n,
                per_case(
                    lambda i: (
                        s.case_id(i),
                        s.hospital(i),
                        s.referral_id(i),
                        s.person_id(i),
                        CENTRES[i % len(CENTRES)],
                        2025,
                        "full",
                        "routine",
                        '["temporary_home_care", "meal_delivery"]',
                        True,
                    )
                ),
            ),
            _tasks(s, ("review", "care-plan")),
            (
                "plans",
                (
                    "case_id",
                    "person_id",
                    "policy_year",
                    "lines",
                    "total_krw",
                    "publicly_paid_krw",
                    "self_paid_krw",
                    "created_at",
                ),
                n,
                per_case(
                    lambda i: (
                        s.case_id(i),
                        s.person_id(i),
                        2025,
                        '[{"service": "meal_delivery", "quantity": 10}]',
                        100_000,
                        100_000,
                        0,
                        s.at(i),
                    )
                ),
            ),
            inbox("referral"),
        ],
        "scheduling": [
            (
                "cases",
                (
                    "case_id",
                    "hospital_id",
                    "referral_id",
                    "centre_id",
                    "priority",
                    "expected_discharge_date",
                    "reviewed",
                    "discharged_at",
                    "services_linked",
                    "closed",
                ),
                n,
                per_case(
                    lambda i: (
                        s.case_id(i),
                        s.hospital(i),
                        s.referral_id(i),
                        CENTRES[i % len(CENTRES)],
                        "routine",
                        s.at(i).date(),
                        True,
                        s.at(i),
                        True,
                        True,
                    )
                ),
            ),
            _tasks(s, ("pre-discharge-visit", "post-discharge-visit")),
            inbox("scheduling"),
        ],
    }


def _tasks(
    s: Synthetic, kinds: Sequence[str]
) -> tuple[str, Sequence[str], int, Callable[[int], Iterator[Row]]]:
    k = len(kinds)
    result = json.dumps({"decision": "done"})

    def rows(start: int) -> Iterator[Row]:
        for j in range(start, min(start + CHUNK, s.cases * k)):
            i = j // k
            at = s.at(i)
            yield (
                s.case_id(i),
                kinds[j % k],
                CENTRES[i % len(CENTRES)],
                "routine",
                at,
                "done",
                "bench-coordinator",
                result,
                at,
                at,
                "bench-coordinator",
            )

    return (
        "tasks",
        (
            "case_id",
            "kind",
            "centre_id",
            "priority",
            "due_at",
            "status",
            "claimed_by",
            "result",
            "created_at",
            "completed_at",
            "completed_by",
        ),
        s.cases * k,
        rows,
    )


async def load_store(
    databases: dict[str, str],
    *,
    cases: int,
    inbox_per_case: int,
    submission: dict[str, Any],
    event_bytes: int = 700,
    vacuum: bool = True,
) -> dict[str, Any]:
    """COPY the synthetic rows into every service's database, then VACUUM ANALYZE."""
    synthetic = Synthetic(cases, submission, event_bytes)
    specs = _table_specs(synthetic, inbox_per_case)
    ticker = Ticker("scale load", 5.0)
    loaded: dict[str, dict[str, int]] = {}
    progress: dict[str, int] = {}
    started = time.perf_counter()

    async def load(service: str) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(databases[service], command_timeout=None)
        try:
            for table, columns, total, rows in specs[service]:
                for start in range(0, total, CHUNK):
                    await conn.copy_records_to_table(
                        table, records=list(rows(start)), columns=list(columns)
                    )
                    progress[service] = progress.get(service, 0) + min(CHUNK, total - start)
                    done = sum(progress.values())
                    ticker(
                        f"{done:,} rows ({done / (time.perf_counter() - started):,.0f} rows/s);"
                        f" {service}.{table}"
                    )
                    # Let the other databases' loads take their turn at the client's CPU.
                    await asyncio.sleep(0)
                loaded.setdefault(service, {})[table] = total
        finally:
            await conn.close()

    await asyncio.gather(*(load(service) for service in specs))
    copied = time.perf_counter() - started
    rows = sum(sum(t.values()) for t in loaded.values())
    say("scale load", f"{rows:,} rows copied in {copied:.0f}s; vacuum analyze")

    async def tidy(service: str) -> dict[str, int]:
        conn: asyncpg.Connection = await asyncpg.connect(databases[service], command_timeout=None)
        try:
            await conn.execute("VACUUM (ANALYZE)" if vacuum else "ANALYZE")
            size: int = await conn.fetchval("SELECT pg_database_size(current_database())")
            await conn.execute("CHECKPOINT")
            return {service: size}
        finally:
            await conn.close()

    sizes: dict[str, int] = {}
    for part in await asyncio.gather(*(tidy(service) for service in specs)):
        sizes.update(part)
    seconds = time.perf_counter() - started
    say("scale load", f"done in {seconds:.0f}s; {sum(sizes.values()) / 1e9:.1f} GB on disk")
    return {
        "rows": rows,
        "tables": loaded,
        "copy_seconds": copied,
        "seconds": seconds,
        "database_bytes": sizes,
        "inbox_per_case": inbox_per_case,
    }
