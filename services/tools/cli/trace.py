"""The history of one case across topics, in order, without personal data.

Given a case id or a referral id: care.cases is read first to learn the case ids and
every referral id of the case (a case may gather several referrals), then the hospital
topics, care.escalations and the dead-letter topics are read for records keyed by any
of them. What is printed of each record is an allow-list per kind of topic: hospital
referral records only by their envelope and size (their data is personal), care.cases
and updates by status-like fields, dead letters by their envelope and where they came from.
"""

from __future__ import annotations

import heapq
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.topics import CASES, ESCALATIONS
from services.lib.runtime.deadletter import CONSUMER_HEADER, SOURCE_TOPIC_HEADER
from services.tools.cli.connect import System
from services.tools.cli.topics import Message, all_topics, reader, scan_with, topic_partitions

_REFERRALS = re.compile(r"^hospital\.[a-z0-9-]+\.referrals$")
_UPDATES = re.compile(r"^hospital\.[a-z0-9-]+\.updates$")

# Of care.cases data: status-like codes and ids. care.cases carries no personal data by
# design; the allow-list keeps it so should a field ever slip in.
CASE_FIELDS = (
    "referral_id",
    "hospital_id",
    "decision",
    "reason_code",
    "kind",
    "outcome",
    "priority",
    "fee_support",
    "centre_id",
    "policy_year",
    "paid_by",
    "partial",
)
# Of `carelink.referral.status-changed.v1`: never `reason` (text) or `details`.
UPDATE_FIELDS = ("case_id", "sequence", "status", "business_status", "reason_code")
ESCALATION_FIELDS = ("task_id", "service", "kind", "centre_id", "priority", "status", "due_at")


def topic_kind(topic: str) -> str:
    if topic.endswith(".dlq"):
        return "dlq"
    if topic == CASES:
        return "cases"
    if topic == ESCALATIONS:
        return "escalations"
    if _REFERRALS.match(topic):
        return "referrals"
    if _UPDATES.match(topic):
        return "updates"
    return "other"


def allowed_fields(kind: str, data: Any) -> dict[str, Any]:
    """The fields of a record's data that may be printed; nothing for unknown kinds."""
    allow = {"cases": CASE_FIELDS, "updates": UPDATE_FIELDS, "escalations": ESCALATION_FIELDS}
    names = allow.get(kind, ())
    if not isinstance(data, dict):
        return {}
    return {
        name: data[name]
        for name in names
        if name in data and isinstance(data[name], str | int | float | bool)
    }


@dataclass(frozen=True)
class TraceEvent:
    time: datetime
    topic: str
    partition: int
    offset: int
    ce_type: str | None
    ce_id: str | None
    size: int
    fields: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "ce_type": self.ce_type,
            "ce_id": self.ce_id,
            "size": self.size,
            "fields": self.fields,
        }


def trace_event(message: Message) -> TraceEvent:
    """What may be shown of one record: see the module's allow-lists."""
    kind = topic_kind(message.topic)
    fields: dict[str, Any] = {}
    if kind in ("cases", "updates", "escalations"):
        fields = allowed_fields(kind, _json(message.value))
    elif kind == "dlq":
        fields = {
            "source_topic": message.header(SOURCE_TOPIC_HEADER),
            "consumer": message.header(CONSUMER_HEADER),
        }
    return TraceEvent(
        time=_time(message),
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        ce_type=message.header("ce_type"),
        ce_id=message.header("ce_id"),
        size=message.size,
        fields=fields,
    )


def in_order(messages: Sequence[Message]) -> list[TraceEvent]:
    """Merged by time; each partition's own (causal) order is kept whatever the clocks say."""
    streams: dict[tuple[str, int], list[TraceEvent]] = {}
    for message in sorted(messages, key=lambda m: (m.topic, m.partition, m.offset)):
        streams.setdefault((message.topic, message.partition), []).append(trace_event(message))
    return list(heapq.merge(*streams.values(), key=lambda e: e.time))


@dataclass
class Trace:
    query: str
    case_ids: set[str] = field(default_factory=set)
    referral_ids: set[str] = field(default_factory=set)
    events: list[TraceEvent] = field(default_factory=list)
    complete: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.query,
            "case_ids": sorted(self.case_ids),
            "referral_ids": sorted(self.referral_ids),
            "complete": self.complete,
            "events": [e.as_json() for e in self.events],
        }


async def trace(system: System, query: str, *, timeout: float) -> Trace:
    result = Trace(query)
    async with reader(system) as consumer:
        topics = await all_topics(consumer)
        others = [t for t in topics if topic_kind(t) in ("referrals", "updates", "escalations")]
        others += [t for t in topics if topic_kind(t) == "dlq"]

        # 1. care.cases: the case itself, or the cases naming this referral.
        cases_counts = await topic_partitions(consumer, [CASES])
        first = await scan_with(
            consumer,
            cases_counts,
            keep=lambda m: m.key_text == query or _json_field(m, "referral_id") == query,
            timeout=timeout,
        )
        result.complete &= first.complete
        case_records = [m for m in first.messages if m.key_text == query]
        result.case_ids = {m.key_text for m in first.messages if m.key_text}
        if not result.case_ids:
            # No case event names it: perhaps a referral whose updates name the case.
            updates = await scan_with(
                consumer,
                await topic_partitions(consumer, [t for t in topics if _UPDATES.match(t)]),
                keep=lambda m: m.key_text == query,
                timeout=timeout,
            )
            result.complete &= updates.complete
            result.case_ids = {
                str(c) for m in updates.messages if (c := _json_field(m, "case_id")) is not None
            }
        if result.case_ids - {query}:
            # 2. Found through a referral: the whole history of those cases.
            ids = set(result.case_ids)
            again = await scan_with(
                consumer, cases_counts, keep=lambda m: m.key_text in ids, timeout=timeout
            )
            result.complete &= again.complete
            case_records = again.messages
        result.referral_ids = {
            str(r) for m in case_records if (r := _json_field(m, "referral_id")) is not None
        }
        if query not in result.case_ids:
            result.referral_ids.add(query)

        # 3. Everything else keyed by one of the ids.
        keys = result.case_ids | result.referral_ids | {query}
        rest = await scan_with(
            consumer,
            await topic_partitions(consumer, others),
            keep=lambda m: m.key_text in keys,
            timeout=timeout,
        )
        result.complete &= rest.complete
    result.events = in_order([*case_records, *rest.messages])
    return result


def trace_table_rows(events: Sequence[TraceEvent], *, show_referral: bool) -> list[list[Any]]:
    """The ids are in the heading; a referral id only when the case has several."""
    hidden = {"case_id", "hospital_id"} | (set() if show_referral else {"referral_id"})
    return [
        [
            e.time.isoformat(timespec="milliseconds"),
            e.topic,
            f"{e.partition}@{e.offset}",
            e.ce_type,
            " ".join(f"{k}={v}" for k, v in e.fields.items() if k not in hidden)
            or f"size={e.size}",
        ]
        for e in events
    ]


def _json(value: bytes | None) -> Any:
    if not value:
        return None
    try:
        return json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None


def _json_field(message: Message, name: str) -> Any:
    data = _json(message.value)
    return data.get(name) if isinstance(data, dict) else None


def _time(message: Message) -> datetime:
    text = message.header("ce_time")
    if text:
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return message.timestamp
