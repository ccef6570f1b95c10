"""Settings from environment variables, with defaults that are safe on a laptop.

Every variable starts with `CARELINK_`; Kafka ones with `CARELINK_KAFKA_`.
Production sets them in docker-compose.yml / the deployment manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("intake", "referral", "scheduling", "outcome")
REPO_ROOT = Path(__file__).resolve().parents[3]
# Local health ports, one per service, so all four can run side by side on one machine.
DEFAULT_HEALTH_PORTS = {"intake": 8181, "referral": 8182, "scheduling": 8183, "outcome": 8184}


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


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELINK_", extra="ignore")

    service: Literal["intake", "referral", "scheduling", "outcome"]
    database_url: str = ""
    health_host: str = "127.0.0.1"
    health_port: int = 0  # 0 = the service's default port; set explicitly in tests
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    log_file: Path | None = None
    # Hospitals and centres, and the yearly policy files; None = the repository's deploy/config.
    registry_file: Path | None = None
    policy_dir: Path | None = None

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

    # How often overdue coordinator tasks are looked for (each is escalated once).
    deadline_scan_interval_s: float = Field(default=30.0, gt=0)
    # Failed contact attempts before a visit puts the case on hold as `unreachable`.
    max_contact_attempts: int = Field(default=3, ge=1)
    # A new expected discharge date further out than this puts the case on hold.
    postponement_horizon_days: int = Field(default=14, ge=1)

    # Lets several test sessions share one broker without joining each other's groups.
    group_prefix: str = ""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)

    def resolved_database_url(self) -> str:
        return self.database_url or f"postgresql://postgres@127.0.0.1:5432/carelink_{self.service}"

    def resolved_health_port(self) -> int:
        return self.health_port or DEFAULT_HEALTH_PORTS[self.service]

    @property
    def group_id(self) -> str:
        """One consumer group per service: every instance of a service shares the work."""
        return f"{self.group_prefix}carelink-{self.service}"
