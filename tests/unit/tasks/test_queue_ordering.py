"""services/lib/tasks/ordering: the queue's sorts and its keyset cursor (issue 10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest

from services.lib.tasks.ordering import (
    NO_DISCHARGE,
    SORTS,
    Cursor,
    CursorError,
    Sort,
    key_of,
    merge_key,
)

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    id: int
    service: str
    priority: str = "routine"
    due_at: datetime = T0
    created_at: datetime = T0
    expected_discharge_date: date | None = None


def page(rows: list[Row], sort: Sort, after: Cursor | None, limit: int) -> list[Row]:
    """What each service answers (its rows after its bound), merged as the console does."""
    found: list[Row] = []
    for service in ("referral", "scheduling"):
        mine = sorted(
            (r for r in rows if r.service == service), key=lambda r: (*key_of(sort, r), r.id)
        )
        if after is not None:
            key, after_id = after.bound(service)
            mine = [r for r in mine if (*key_of(sort, r), r.id) > (*key, after_id)]
        found += mine[:limit]
    found.sort(key=lambda r: merge_key(sort, r.service, r))
    return found[:limit]


def test_priority_puts_urgent_first_then_the_earliest_deadline() -> None:
    late_urgent = Row(1, "referral", "urgent", T0 + timedelta(hours=5))
    early_routine = Row(2, "referral", "routine", T0)
    early_urgent = Row(3, "scheduling", "urgent", T0 + timedelta(hours=1))
    rows = [late_urgent, early_routine, early_urgent]

    ordered = sorted(rows, key=lambda r: merge_key("priority", r.service, r))

    assert [r.id for r in ordered] == [3, 1, 2]


def test_discharge_sorts_an_unknown_date_after_every_known_one() -> None:
    unknown = Row(1, "referral")
    far = Row(2, "referral", expected_discharge_date=date(2099, 1, 1))

    ordered = sorted([unknown, far], key=lambda r: merge_key("discharge", r.service, r))

    assert [r.id for r in ordered] == [2, 1]
    assert key_of("discharge", unknown) == (NO_DISCHARGE,)


def test_ties_are_broken_by_service_then_id_so_the_order_is_total() -> None:
    a = Row(7, "scheduling")
    b = Row(9, "referral")
    c = Row(3, "referral")

    ordered = sorted([a, b, c], key=lambda r: merge_key("deadline", r.service, r))

    assert [(r.service, r.id) for r in ordered] == [
        ("referral", 3),
        ("referral", 9),
        ("scheduling", 7),
    ]


@pytest.mark.parametrize("sort", SORTS)
def test_paging_through_two_services_shows_every_row_once_in_order(sort: Sort) -> None:
    # Many equal keys across both services: the tie-breakers carry the pages.
    rows = [
        Row(
            id=i,
            service="referral" if i % 3 else "scheduling",
            priority="urgent" if i % 4 == 0 else "routine",
            due_at=T0 + timedelta(hours=i % 5),
            created_at=T0 + timedelta(minutes=i % 2),
            expected_discharge_date=None if i % 7 == 0 else date(2026, 12, 10 + i % 3),
        )
        for i in range(1, 41)
    ]
    seen: list[Row] = []
    after: Cursor | None = None
    while True:
        shown = page(rows, sort, after, limit=6)
        if not shown:
            break
        seen += shown
        token = Cursor.after(sort, shown[-1].service, shown[-1]).encode()
        after = Cursor.decode(token, sort)

    assert len(seen) == len(rows)
    assert seen == sorted(rows, key=lambda r: merge_key(sort, r.service, r))


@pytest.mark.parametrize("sort", SORTS)
def test_a_cursor_survives_encoding(sort: Sort) -> None:
    row = Row(42, "scheduling", "urgent", T0, T0, date(2026, 12, 24))
    cursor = Cursor.after(sort, "scheduling", row)

    assert Cursor.decode(cursor.encode(), sort) == cursor


def test_a_cursor_of_another_sort_is_refused_naming_both() -> None:
    token = Cursor.after("deadline", "referral", Row(1, "referral")).encode()

    with pytest.raises(CursorError, match="sort=deadline, not sort=created"):
        Cursor.decode(token, "created")


@pytest.mark.parametrize(
    "token", ["x", "bm90IGpzb24", "W10", "WyJwcmlvcml0eSIsWzEsMl0sInIiLDFd", "A" * 500]
)
def test_a_token_this_code_did_not_write_is_refused(token: str) -> None:
    with pytest.raises(CursorError, match="not a cursor"):
        Cursor.decode(token, "priority")


def test_bound_in_a_service_after_the_cursors_takes_rows_of_the_same_key() -> None:
    cursor = Cursor.after("deadline", "referral", Row(5, "referral"))

    assert cursor.bound("referral") == ((T0,), 5)
    assert cursor.bound("scheduling") == ((T0,), 0)
    assert (
        Cursor.after("deadline", "scheduling", Row(5, "scheduling")).bound("referral")[1]
        == 2**63 - 1
    )
