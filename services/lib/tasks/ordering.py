"""How a queue is sorted and paged, the same way in every task service and in the
console that merges them (issue 10). Pure: no database, no HTTP.

A queue is read a page at a time with a keyset cursor, never an offset: the next
page starts after the last row shown, so a page costs the same at row 100,000 as
at row 1 and a task that moves between reads is neither shown twice nor skipped
over. The order is total across services: (the sort's key, service, id). One
cursor therefore serves every service: each turns it into its own bound
(`bound`), and the console merges the services' pages into one.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

Sort = Literal["priority", "deadline", "discharge", "created"]
SORTS: tuple[Sort, ...] = ("priority", "deadline", "discharge", "created")
DEFAULT_SORT: Sort = "priority"
SORT_HELP = (
    "priority: urgent first, then by deadline; deadline: the earliest deadline first; "
    "discharge: the earliest expected discharge first (unknown last); "
    "created: the oldest task first"
)
# A task without an expected discharge date sorts after every real one.
NO_DISCHARGE = date.max
_MAX_ID = 2**63 - 1
_MAX_CURSOR_CHARS = 400


class Sortable(Protocol):
    """What a task row has for sorting (a Task, a TaskView, the console's TaskOut)."""

    @property
    def priority(self) -> str: ...
    @property
    def due_at(self) -> datetime: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def expected_discharge_date(self) -> date | None: ...
    @property
    def id(self) -> int: ...


Key = tuple[bool, datetime] | tuple[datetime] | tuple[date]


def key_of(sort: Sort, task: Sortable) -> Key:
    """The row's position under `sort`, before the tie-breakers (service, id)."""
    if sort == "priority":
        return (task.priority != "urgent", task.due_at)
    if sort == "deadline":
        return (task.due_at,)
    if sort == "discharge":
        return (task.expected_discharge_date or NO_DISCHARGE,)
    return (task.created_at,)


def merge_key(sort: Sort, service: str, task: Sortable) -> tuple[Any, ...]:
    """The total order across services: the sort's key, then service, then id."""
    return (*key_of(sort, task), service, task.id)


class CursorError(ValueError):
    """A cursor that is not one this code wrote, or one for another sort."""


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: just after (key, service, id) under `sort`."""

    sort: Sort
    key: Key
    service: str
    id: int

    @classmethod
    def after(cls, sort: Sort, service: str, task: Sortable) -> Cursor:
        return cls(sort, key_of(sort, task), service, task.id)

    def encode(self) -> str:
        values = [v.isoformat() if isinstance(v, date) else v for v in self.key]
        raw = json.dumps([self.sort, values, self.service, self.id], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str, sort: Sort) -> Cursor:
        """The cursor in `token`, which must have been written for `sort`."""
        if not token or len(token) > _MAX_CURSOR_CHARS:
            raise CursorError("cursor: not a cursor of this queue")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            written, values, service, task_id = json.loads(raw)
            if written not in SORTS:
                raise CursorError("cursor: not a cursor of this queue")
            if written != sort:
                raise CursorError(f"cursor: written for sort={written}, not sort={sort}")
            key = _key_from_json(written, values)
            if not isinstance(service, str) or not isinstance(task_id, int):
                raise CursorError("cursor: not a cursor of this queue")
            if not 0 <= task_id <= _MAX_ID:
                raise CursorError("cursor: not a cursor of this queue")
        except CursorError:
            raise
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            raise CursorError("cursor: not a cursor of this queue") from None
        return cls(written, key, service, task_id)

    def bound(self, service: str) -> tuple[Key, int]:
        """This service's rows come after (key, id): the cursor's own id in its service;
        in a service that sorts after the cursor's, every row of the same key is still
        to come (id 0); in one before it, none is (the largest id)."""
        if service == self.service:
            return self.key, self.id
        return self.key, (0 if service > self.service else _MAX_ID)


def _key_from_json(sort: Sort, values: Any) -> Key:
    if not isinstance(values, list):
        raise CursorError("cursor: not a cursor of this queue")
    if sort == "priority":
        if len(values) != 2 or not isinstance(values[0], bool):
            raise CursorError("cursor: not a cursor of this queue")
        return (values[0], _moment(values[1]))
    if len(values) != 1:
        raise CursorError("cursor: not a cursor of this queue")
    if sort == "discharge":
        return (date.fromisoformat(str(values[0])),)
    return (_moment(values[0]),)


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise CursorError("cursor: not a cursor of this queue")
    return moment
