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

from contracts.topics import LOCAL, Durability

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

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    def resolved_database_url(self) -> str:
        return self.database_url or f"postgresql://postgres@127.0.0.1:5432/carelink_{self.service}"

    @property
    def group_id(self) -> str:
        """One consumer group per service: every instance of a service shares the work."""
        return f"{self.group_prefix}carelink-{self.service}"
