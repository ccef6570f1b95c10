"""Consumer lag: each carelink group's committed offset against each partition's end.

Committed offsets are always asked for with the partitions named: the local Tansu
broker drops the connection when a group's offsets are listed without them. Which
topics a group reads is not taken from describe_consumer_groups either (aiokafka cannot
decode Tansu's answer and the connection drops): it is the topics its service reads
plus any where the group has committed something, so a group's offsets are asked for
all partitions of all topics at once.
End offsets on Tansu are approximate (it counts batches), so a committed offset past
the end is shown as lag 0 and flagged, not as a negative lag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from contracts.topics import CASES
from services.tools.cli.connect import System
from services.tools.cli.topics import (
    admin_client,
    all_topics,
    beginning_offsets,
    end_offsets,
    partitions_of,
    reader,
    topic_partitions,
)
from services.tools.stack.deployables import SERVICES

_GROUP = re.compile(r"^(?P<prefix>.*)carelink-(?P<service>" + "|".join(SERVICES) + r")$")
_REFERRALS = re.compile(r"^hospital\.[a-z0-9-]+\.referrals$")


def partition_lag(committed: int | None, start: int, end: int) -> int:
    """Records the group has still to read in one partition.

    Nothing committed (None or -1): everything still on the partition, end - start.
    Never negative: a committed offset past the reported end (Tansu) counts as caught up.
    """
    if committed is None or committed < 0:
        return max(0, end - start)
    return max(0, end - committed)


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    start: int
    end: int

    @property
    def lag(self) -> int:
        return partition_lag(self.committed, self.start, self.end)

    @property
    def beyond_end(self) -> bool:
        """Committed past the broker's end offset: the end offset is wrong (Tansu)."""
        return self.committed is not None and self.committed > self.end

    def as_json(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "committed": self.committed,
            "start": self.start,
            "end": self.end,
            "lag": self.lag,
            "committed_beyond_end": self.beyond_end,
        }


def group_report(group: str, rows: Iterable[PartitionLag]) -> dict[str, Any]:
    """The JSON shape of one group: topics in name order, partitions in number order."""
    by_topic: dict[str, list[PartitionLag]] = {}
    for row in rows:
        by_topic.setdefault(row.topic, []).append(row)
    topics = [
        {
            "topic": topic,
            "lag": sum(r.lag for r in parts),
            "partitions": [r.as_json() for r in sorted(parts, key=lambda r: r.partition)],
        }
        for topic, parts in sorted(by_topic.items())
    ]
    return {
        "group": group,
        "service": service_of(group),
        "lag": sum(sum(r.lag for r in parts) for parts in by_topic.values()),
        "topics": topics,
    }


def service_of(group: str) -> str | None:
    match = _GROUP.match(group)
    return match.group("service") if match else None


def expected_topics(service: str | None, topics: Iterable[str]) -> list[str]:
    """What a service's group reads: intake every hospital's referrals and care.cases;
    the others care.cases."""
    available = set(topics)
    wanted = {CASES}
    if service == "intake":
        wanted |= {t for t in available if _REFERRALS.match(t)}
    return sorted(wanted & available)


def select_groups(listed: Iterable[str], prefix: str | None) -> list[str]:
    """carelink groups: with a prefix, exactly its four names (listed or not, since Tansu
    lists a group only once it has committed); without, every listed carelink group."""
    if prefix is not None:
        return [f"{prefix}carelink-{s}" for s in SERVICES]
    return sorted({g for g in listed if _GROUP.match(g)}, key=_group_order)


def _group_order(group: str) -> tuple[str, int]:
    match = _GROUP.match(group)
    if match is None:
        raise ValueError(f"not a carelink consumer group: {group}")
    return (match.group("prefix"), SERVICES.index(match.group("service")))


def committed_value(raw: Any) -> int | None:
    """aiokafka's OffsetAndMetadata (or nothing) as an offset; -1 means none committed."""
    if raw is None:
        return None
    offset = int(raw.offset)
    return None if offset < 0 else offset


async def consumer_lag(
    system: System, *, prefix: str | None = None, groups: Sequence[str] = ()
) -> list[dict[str, Any]]:
    async with admin_client(system) as admin:
        if groups:
            names = list(groups)
        else:
            listed = [str(g[0]) for g in await admin.list_consumer_groups()]
            names = select_groups(listed, prefix)
        async with reader(system) as consumer:
            counts = await topic_partitions(consumer, await all_topics(consumer))
            everything = partitions_of(counts)
            starts = await beginning_offsets(consumer, everything)
            ends = await end_offsets(consumer, everything)
        reports = []
        for group in names:
            offsets = await admin.list_consumer_group_offsets(group, partitions=everything)
            committed = {tp: committed_value(offsets.get(tp)) for tp in everything}
            reports.append(
                group_report(group, _rows(group, counts, committed, starts, ends)),
            )
    return reports


def _rows(
    group: str,
    counts: dict[str, int],
    committed: dict[TopicPartition, int | None],
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
) -> list[PartitionLag]:
    topics = set(expected_topics(service_of(group), counts))
    topics |= {tp.topic for tp, offset in committed.items() if offset is not None}
    return [
        PartitionLag(tp.topic, tp.partition, committed.get(tp), starts.get(tp, 0), ends.get(tp, 0))
        for tp in partitions_of({t: counts[t] for t in topics if t in counts})
    ]


def lag_table_rows(reports: Sequence[dict[str, Any]], *, detail: bool) -> list[list[Any]]:
    """One row per group and topic; with `detail`, one per partition."""
    rows: list[list[Any]] = []
    for report in reports:
        for topic in report["topics"]:
            parts = topic["partitions"]
            flag = "end<committed" if any(p["committed_beyond_end"] for p in parts) else ""
            if detail:
                for p in parts:
                    rows.append(
                        [
                            report["group"],
                            topic["topic"],
                            p["partition"],
                            p["committed"],
                            p["end"],
                            p["lag"],
                            "end<committed" if p["committed_beyond_end"] else "",
                        ]
                    )
            else:
                committed = [p["committed"] for p in parts if p["committed"] is not None]
                rows.append(
                    [
                        report["group"],
                        topic["topic"],
                        len(parts),
                        sum(committed) if committed else None,
                        sum(p["end"] for p in parts),
                        topic["lag"],
                        flag,
                    ]
                )
    return rows
