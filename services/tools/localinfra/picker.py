"""Choose and start the infrastructure: explicit settings, else Docker, else embedded."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from services.tools.localinfra.infrastructure import (
    Endpoints,
    ExplicitInfrastructure,
    Infrastructure,
    InfrastructureError,
)
from services.tools.localinfra.postgres import probe_postgres
from services.tools.localinfra.processes import run_blocking, wait_ready
from services.tools.localinfra.tansu import probe_kafka, split_bootstrap

log = logging.getLogger(__name__)

KAFKA_ENV = "CARELINK_KAFKA_BOOTSTRAP"
POSTGRES_ENV = "CARELINK_POSTGRES_URL"
KIND_ENV = "CARELINK_LOCALINFRA"
KINDS = ("explicit", "containers", "embedded")


def explicit_settings(env: Mapping[str, str]) -> tuple[str, str] | None:
    """(bootstrap, admin URL) when both are set; None when neither; error when one is."""
    kafka = env.get(KAFKA_ENV, "").strip()
    postgres = env.get(POSTGRES_ENV, "").strip()
    if kafka and postgres:
        return kafka, postgres
    if kafka or postgres:
        missing = POSTGRES_ENV if kafka else KAFKA_ENV
        # Half explicit would silently start a second, empty server of the other kind.
        raise InfrastructureError(
            f"{KAFKA_ENV} and {POSTGRES_ENV} go together; {missing} is not set"
        )
    return None


def choose_kind(kind: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """Which infrastructure start_infrastructure would use, without starting anything."""
    env = os.environ if env is None else env
    wanted = (kind or env.get(KIND_ENV, "") or "auto").strip().lower()
    if wanted not in (*KINDS, "auto"):
        raise InfrastructureError(
            f"unknown infrastructure kind {wanted!r}; use one of auto, {', '.join(KINDS)}"
        )
    if wanted == "auto":
        if explicit_settings(env) is not None:
            return "explicit"
        from services.tools.localinfra.containers import docker_available

        return "containers" if docker_available() else "embedded"
    if wanted == "explicit":
        if explicit_settings(env) is None:
            raise InfrastructureError(f"kind 'explicit' needs {KAFKA_ENV} and {POSTGRES_ENV}")
        return wanted
    if wanted == "containers":
        from services.tools.localinfra.containers import docker_available

        # Say plainly why instead of failing deep inside testcontainers.
        if not docker_available():
            raise InfrastructureError("containers were asked for but no Docker engine answers")
    if env.get(KAFKA_ENV) or env.get(POSTGRES_ENV):
        log.warning(
            "%s/%s are set but ignored: kind %r was asked for", KAFKA_ENV, POSTGRES_ENV, wanted
        )
    return wanted


def start_infrastructure(
    base_dir: Path,
    *,
    kind: str | None = None,
    postgres_fsync: bool = False,
    keep_data: bool = True,
) -> Infrastructure:
    """Start (or adopt) a Kafka-protocol broker and PostgreSQL; blocks until both answer.

    kind: "explicit" | "containers" | "embedded" | "auto"; None reads
    CARELINK_LOCALINFRA (default auto: explicit env settings, else Docker, else
    embedded). base_dir gets a fresh subdirectory per call for data and logs.
    postgres_fsync: keep fsync on (off by default: test data need not survive an
    OS crash). keep_data=False deletes the embedded data dir on stop(); a data dir
    that had to live outside base_dir (root with a private base_dir) always goes.
    """
    chosen = choose_kind(kind)
    log.info("local infrastructure: %s", chosen)
    if chosen == "explicit":
        settings = explicit_settings(os.environ)
        if settings is None:
            raise RuntimeError("explicit infrastructure chosen but its settings are incomplete")
        return _adopt_explicit(*settings)
    if chosen == "containers":
        from services.tools.localinfra.containers import ContainerInfrastructure
        from services.tools.localinfra.embedded import make_instance_dir

        return ContainerInfrastructure.start(
            make_instance_dir(base_dir), postgres_fsync=postgres_fsync
        )
    from services.tools.localinfra.embedded import EmbeddedInfrastructure

    return EmbeddedInfrastructure.start(
        base_dir, postgres_fsync=postgres_fsync, keep_data=keep_data
    )


def _adopt_explicit(bootstrap: str, postgres_url: str, timeout: float = 30.0) -> Infrastructure:
    split_bootstrap(bootstrap)  # fail on a malformed list before waiting on it
    # TLS/SASL listeners need client settings we do not have here; a TCP accept
    # is all we can check on those.
    plaintext = os.environ.get("CARELINK_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "PLAINTEXT"

    async def kafka_probe() -> None:
        if plaintext:
            await probe_kafka(bootstrap)
            return
        host, port = split_bootstrap(bootstrap)[0]
        _, writer = await asyncio.open_connection(host, port)
        writer.close()
        await writer.wait_closed()

    async def wait_both() -> None:
        # Someone may have just run `docker compose up`: give the servers a moment.
        await wait_ready(kafka_probe, what=f"Kafka at {bootstrap}", within=timeout)
        await wait_ready(
            lambda: probe_postgres(postgres_url),
            what="PostgreSQL at " + _redact(postgres_url),
            within=timeout,
        )

    run_blocking(wait_both)
    return ExplicitInfrastructure(
        Endpoints(
            kafka_bootstrap=bootstrap, postgres_url=postgres_url, kind="explicit", log_dir=None
        )
    )


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
