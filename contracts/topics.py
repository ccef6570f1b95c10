"""Every topic carelink uses, declared in one place: name, partitions, retention, and how
many copies the cluster keeps (replication factor, `min.insync.replicas`).

Topics are always created up front as declared here: a subscriber naming a missing
topic would otherwise auto-create it with the broker's defaults. Everything that
creates or declares topics reads this catalogue: the services and the topics job
(`services.lib.runtime.kafka.ensure_topics`, with the durability from
`CARELINK_KAFKA_REPLICATION_FACTOR` / `CARELINK_KAFKA_MIN_INSYNC_REPLICAS`), and the
generated Strimzi `KafkaTopic` resources (`python -m contracts.k8s`, with `PRODUCTION`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from contracts.hospital_v1 import HOSPITAL_ID_PATTERN

CASES = "care.cases"
# Raised for operators and coordinators when a task passes its deadline; never sent to hospitals.
ESCALATIONS = "care.escalations"

CASES_PARTITIONS = 12
HOSPITAL_PARTITIONS = 3
DLQ_PARTITIONS = 1
ESCALATIONS_PARTITIONS = 3

DAY_MS = 24 * 60 * 60 * 1000
# How long the broker keeps records, per kind of topic. Services keep their state in
# their databases, so no topic is the system of record; retention only has to outlast
# the longest outage a reader must survive, and no longer where the records are personal.
#
# A hospital's referrals carry personal data: long enough to cover an outage of intake,
# no longer (docs/security.md).
REFERRALS_RETENTION_MS = 7 * DAY_MS
# A hospital's updates are its only answer: a hospital whose integration is down for a
# few weeks still finds every update of its referrals when it comes back.
UPDATES_RETENTION_MS = 30 * DAY_MS
# Internal events (no personal data): a month of history for `carelink trace` and for a
# consumer that was stopped for a long time.
CASES_RETENTION_MS = 30 * DAY_MS
ESCALATIONS_RETENTION_MS = 30 * DAY_MS
# Dead letters: long enough to see, fix and replay; a hospital's hold its original
# records, so not longer (README "Privacy", docs/security.md).
DLQ_RETENTION_MS = 14 * DAY_MS

_HOSPITAL_TOPIC = re.compile(
    r"^hospital\.(?P<hospital>[a-z0-9-]{2,40})\.(?P<kind>referrals|updates)$"
)


@dataclass(frozen=True)
class Durability:
    """How many copies of each partition the cluster keeps, and how many in-sync copies
    a write needs before it is acknowledged (producers use `acks=all`)."""

    replication_factor: int
    min_insync_replicas: int

    def __post_init__(self) -> None:
        if self.replication_factor < 1:
            raise ValueError(f"replication factor must be >= 1, not {self.replication_factor}")
        if not 1 <= self.min_insync_replicas <= self.replication_factor:
            raise ValueError(
                f"min.insync.replicas must be between 1 and the replication factor "
                f"({self.replication_factor}), not {self.min_insync_replicas}: every "
                "acknowledged write would fail"
            )


# One broker (the embedded Tansu broker, docker-compose's single Apache Kafka node).
LOCAL = Durability(replication_factor=1, min_insync_replicas=1)
# A production cluster of three or more brokers: a write survives the loss of one broker,
# and one broker may be down (a rolling restart) while producers still write.
PRODUCTION = Durability(replication_factor=3, min_insync_replicas=2)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    # None: the broker's default (only for ad-hoc topics of tests and benchmarks; every
    # topic of the catalogue sets it).
    retention_ms: int | None = None
    replication_factor: int = LOCAL.replication_factor
    min_insync_replicas: int = LOCAL.min_insync_replicas

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"{self.name}: partitions must be >= 1, not {self.partitions}")
        if self.retention_ms is not None and self.retention_ms < 1:
            raise ValueError(f"{self.name}: retention.ms must be positive")
        Durability(self.replication_factor, self.min_insync_replicas)

    @property
    def durability(self) -> Durability:
        return Durability(self.replication_factor, self.min_insync_replicas)

    def with_durability(self, durability: Durability) -> TopicSpec:
        return replace(
            self,
            replication_factor=durability.replication_factor,
            min_insync_replicas=durability.min_insync_replicas,
        )

    def configs(self) -> dict[str, str]:
        """The topic-level configs the broker keeps for this topic (Kafka's names)."""
        configs = {"min.insync.replicas": str(self.min_insync_replicas)}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


def referrals(hospital_id: str) -> str:
    """The topic a hospital writes its referral events to."""
    _check_hospital_id(hospital_id)
    return f"hospital.{hospital_id}.referrals"


def updates(hospital_id: str) -> str:
    """The topic only this hospital reads its status updates from."""
    _check_hospital_id(hospital_id)
    return f"hospital.{hospital_id}.updates"


def dead_letters(topic: str) -> str:
    """Dead letters stay beside their source, so a hospital's stay with that hospital."""
    return f"{topic}.dlq"


def hospital_of(topic: str) -> str | None:
    """The hospital a `hospital.<id>.*` topic belongs to, or None for other topics."""
    match = _HOSPITAL_TOPIC.fullmatch(topic)
    return match.group("hospital") if match else None


def all_topics(hospital_ids: Iterable[str], durability: Durability = LOCAL) -> list[TopicSpec]:
    """Every topic the system needs for these hospitals, dead-letter topics included.

    `durability` is the cluster's (`LOCAL` on one broker, `PRODUCTION` on a cluster, or
    what `KafkaSettings.durability` says); everything else is the topic's own.
    """
    specs = [
        TopicSpec(CASES, CASES_PARTITIONS, CASES_RETENTION_MS),
        TopicSpec(ESCALATIONS, ESCALATIONS_PARTITIONS, ESCALATIONS_RETENTION_MS),
    ]
    for hospital_id in sorted(set(hospital_ids)):
        specs.append(TopicSpec(referrals(hospital_id), HOSPITAL_PARTITIONS, REFERRALS_RETENTION_MS))
        specs.append(TopicSpec(updates(hospital_id), HOSPITAL_PARTITIONS, UPDATES_RETENTION_MS))
        specs.append(
            TopicSpec(dead_letters(referrals(hospital_id)), DLQ_PARTITIONS, DLQ_RETENTION_MS)
        )
    specs.append(TopicSpec(dead_letters(CASES), DLQ_PARTITIONS, DLQ_RETENTION_MS))
    return [spec.with_durability(durability) for spec in specs]


def _check_hospital_id(hospital_id: str) -> None:
    if not re.fullmatch(HOSPITAL_ID_PATTERN, hospital_id):
        raise ValueError(f"not a hospital id: {hospital_id!r} (expected [a-z0-9-]{{2,40}})")
