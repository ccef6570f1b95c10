"""Settings every service shares, from environment variables, with defaults that
are safe on a laptop. The runtime knows no service: each service subclasses
`ServiceSettings` in its own `settings.py` (its name, default port and domain
settings) and names that class in its `ServiceSpec`.

Every variable starts with `CARELINK_`; Kafka ones with `CARELINK_KAFKA_`.
Production sets them in docker-compose.yml / the deployment manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.topics import (
    CASES_RETENTION_MS,
    DAY_MS,
    DLQ_RETENTION_MS,
    ESCALATIONS_RETENTION_MS,
    LOCAL,
    REFERRALS_RETENTION_MS,
    UPDATES_RETENTION_MS,
    Durability,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELINK_KAFKA_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # On for Apache Kafka; the local Tansu broker refuses InitProducerId, so off by default.
    enable_idempotence: bool = False
    # Tansu makes each join wait half the session timeout; tests and `make run` lower these.
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # How long the broker may hold a fetch with no data: the consumer's latency floor
    # per hop when traffic is light (aiokafka's default is 500 ms).
    fetch_max_wait_ms: int = Field(default=50, ge=0)
    # Hospitals write by hand; refuse records larger than this before they reach a store.
    max_record_bytes: int = 1_000_000

    # Topics (contracts/topics.py declares them). Copies the cluster keeps of each
    # partition, and in-sync copies a write needs: 1/1 on one broker (the embedded Tansu
    # broker, docker-compose); a production cluster sets 3/2 (contracts.topics.PRODUCTION).
    replication_factor: int = Field(default=LOCAL.replication_factor, ge=1)
    min_insync_replicas: int = Field(default=LOCAL.min_insync_replicas, ge=1)
    # Off where the platform declares the topics (Strimzi KafkaTopic resources generated
    # from the catalogue): the service then neither lists nor creates topics, so its
    # principal needs no Create, and no Describe beyond its own topics.
    create_topics: bool = True

    @model_validator(mode="after")
    def _durability_is_possible(self) -> KafkaSettings:
        # min.insync.replicas above the replication factor fails every acknowledged write.
        Durability(self.replication_factor, self.min_insync_replicas)
        return self

    @property
    def durability(self) -> Durability:
        return Durability(self.replication_factor, self.min_insync_replicas)


# How long the inbox must keep an event's id: longer than any copy of the event can
# still reach a consumer that handled it (contracts/topics.py declares the retentions).
# - An ordinary redelivery (a crash before the offset commit, a rebalance, an offset reset
#   to the earliest) is a copy still on the source topic: it is gone one topic retention
#   after it was written, so at most that long after it was handled (30 days at most).
# - A replay (`carelink dlq replay`): one consumer dead-lettered the event while the
#   others handled it; an operator may replay the dead letter until its own retention
#   ends (14 days), and the replayed copy then sits on the source topic for that topic's
#   retention, where every consumer of the topic may be handed it again. Only the inbox
#   rows of the consumers that handled it make it a duplicate for them.
# So the floor is the longest source retention plus the dead letters' retention, plus a
# day of margin (clock skew, a dead letter written a little after the first handling):
# 30 + 14 + 1 = 45 days today. A dead-lettered row ages like a handled one (its age
# restarts when the event is dead-lettered again), and a dead letter cannot be replayed
# after its retention, so every replayable dead letter keeps its inbox row.
# A replayed copy that is itself dead-lettered and replayed again restarts the clock on
# the consumer that dead-lettered it, not on the others: chains of replays weeks apart
# are outside this bound (replay soon after a fix).
INBOX_RETENTION_FLOOR_DAYS = (
    max(
        CASES_RETENTION_MS,
        ESCALATIONS_RETENTION_MS,
        REFERRALS_RETENTION_MS,
        UPDATES_RETENTION_MS,
    )
    + DLQ_RETENTION_MS
) // DAY_MS + 1


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELINK_", extra="ignore")

    # Each service's settings class fixes its name and its local default port, distinct
    # per service so all of them can run side by side on one machine.
    service: str
    database_url: str = ""
    health_host: str = "127.0.0.1"
    health_port: int = Field(default=0, ge=0, le=65535)  # 0 = any free port
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    log_file: Path | None = None
    # Hospitals and centres (their topics); None = the repository's deploy/config.
    registry_file: Path | None = None

    # Records handled in one transaction (a savepoint each); 1 = one commit per record.
    consumer_batch_size: int = Field(default=200, ge=1)
    outbox_batch_size: int = Field(default=500, ge=1)
    # NOTIFY wakes the relay at once; polling is only the fallback for a lost notification.
    outbox_poll_interval_s: float = Field(default=1.0, gt=0)
    db_pool_min: int = 1
    db_pool_max: int = 10

    retry_attempts: int = Field(default=5, ge=1)
    retry_base_delay_s: float = Field(default=0.2, gt=0)
    retry_max_delay_s: float = Field(default=5.0, gt=0)
    shutdown_grace_s: float = Field(default=10.0, gt=0)

    # Lets several test sessions share one broker without joining each other's groups.
    group_prefix: str = ""

    # A migration statement waits at most this long for a lock (PostgreSQL lock_timeout):
    # one queued behind a busy table would otherwise block every query that comes after it.
    # It then fails with the migration's name and the service does not start.
    migration_lock_timeout_s: float = Field(default=5.0, gt=0)

    # Table retention (services/lib/runtime/retention.py). Published outbox rows are kept
    # this long after publication (for looking into what was sent), then deleted; rows
    # not yet published or set aside are never deleted.
    outbox_retention_hours: float = Field(default=7 * 24, gt=0)
    # Inbox rows (handled and dead-lettered event ids) are kept this long after they were
    # last written; never less than INBOX_RETENTION_FLOOR_DAYS (see above).
    inbox_retention_days: float = 60
    # How often the retention job runs, how many rows one DELETE removes, and the pause
    # between two batches (each batch is its own short transaction).
    retention_interval_s: float = Field(default=600.0, gt=0)
    retention_batch_size: int = Field(default=1000, ge=1, le=100_000)
    retention_pause_s: float = Field(default=0.1, ge=0)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    @model_validator(mode="after")
    def _inbox_outlasts_redeliveries(self) -> ServiceSettings:
        if self.inbox_retention_days < INBOX_RETENTION_FLOOR_DAYS:
            raise ValueError(
                f"CARELINK_INBOX_RETENTION_DAYS={self.inbox_retention_days:g} is too short: the "
                f"inbox must keep event ids at least {INBOX_RETENTION_FLOOR_DAYS} days (the "
                "longest topic retention plus the dead letters' retention, plus a day), or a "
                "redelivered or replayed event would be handled twice"
            )
        return self

    def resolved_database_url(self) -> str:
        return self.database_url or f"postgresql://postgres@127.0.0.1:5432/carelink_{self.service}"

    @property
    def group_id(self) -> str:
        """One consumer group per service: every instance of a service shares the work."""
        return f"{self.group_prefix}carelink-{self.service}"
