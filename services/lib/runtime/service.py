"""The lifespan every service shares: connect, migrate, consume, relay, serve
health, and shut down gracefully. Each service's composition root (its
`app.py`) describes itself with a `ServiceSpec` and hands it to `run_service`.

Shutdown order matters: stop consuming first (the record in hand finishes and
is acked), then let the relay drain what was committed, then close the
producer and the pool. Everything is bounded by `shutdown_grace_s`, below the
orchestrator's kill timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import asyncpg
import uvicorn
from fastapi import FastAPI

from contracts.topics import all_topics
from services.lib.policy import (
    Findings,
    PolicyBook,
    PolicyError,
    Providers,
    Registry,
    load_findings,
    load_policies,
    load_providers,
    load_registry,
)
from services.lib.runtime import db, kafka, metrics, tracing
from services.lib.runtime.health import health_app
from services.lib.runtime.logging import broker_logger, configure_logging, get_logger
from services.lib.runtime.outbox import OutboxRelay
from services.lib.runtime.pipeline import Handler, Pipeline, Record, RetryPolicy
from services.lib.runtime.retention import RetentionPolicy, run_retention
from services.lib.runtime.settings import ServiceSettings

log = get_logger(__name__)

S = TypeVar("S", bound=ServiceSettings)


class PolicyNotLoaded(RuntimeError):
    """A service used the yearly policies without asking for them in its spec."""


@dataclass
class ServiceContext(Generic[S]):
    """What a service's handler factory may use: built once, shared by all records."""

    settings: S
    pool: asyncpg.Pool
    registry: Registry
    loaded_policies: PolicyBook | None = None
    loaded_providers: Providers | None = None
    loaded_findings: Findings | None = None

    @property
    def policies(self) -> PolicyBook:
        if self.loaded_policies is None:
            raise PolicyNotLoaded("set ServiceSpec.policy_dir to load the yearly policies")
        return self.loaded_policies

    @property
    def providers(self) -> Providers:
        if self.loaded_providers is None:
            raise PolicyNotLoaded("set ServiceSpec.providers_file to load the providers")
        return self.loaded_providers

    @property
    def findings(self) -> Findings:
        if self.loaded_findings is None:
            raise PolicyNotLoaded("set ServiceSpec.findings_file to load the findings vocabulary")
        return self.loaded_findings


@dataclass(frozen=True)
class ServiceSpec(Generic[S]):
    name: str
    # The service's own settings class (its name, default port and domain settings).
    settings: Callable[[], S]
    migrations: Path
    # The topics this service consumes, given the registered hospitals.
    topics: Callable[[Registry], Sequence[str]]
    handler: Callable[[ServiceContext[S]], Handler]
    # Where the yearly policy files are, for the services that apply them; None = not used.
    policy_dir: Callable[[S], Path | None] | None = None
    # Where the contracted providers file is, for the services that order from them.
    providers_file: Callable[[S], Path | None] | None = None
    # Where the visit findings vocabulary is, for the services that record or send them.
    findings_file: Callable[[S], Path | None] | None = None
    # Migrations of shared libraries the service uses (e.g. the tasks table), applied first.
    extra_migrations: Sequence[tuple[str, Path]] = ()
    routes: Callable[[FastAPI, ServiceContext[S]], None] | None = None
    extra_tasks: Sequence[Callable[[ServiceContext[S], asyncio.Event], object]] = field(
        default_factory=tuple
    )
    # What to do with a record over the size limit instead of dead-lettering it.
    oversize: Callable[[asyncpg.Connection, Record, int], Awaitable[None]] | None = None


async def run_service(spec: ServiceSpec[S], settings: S, stop: asyncio.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set), then shut down gracefully."""
    stop = stop or asyncio.Event()
    _install_signal_handlers(stop)
    # Configuration first: a malformed file stops the service before it touches anything.
    registry = load_registry(settings.registry_file)
    policies = None
    if spec.policy_dir is not None:
        policies = load_policies(spec.policy_dir(settings))
        for gap in policies.report():
            log.warning("policy gap", detail=gap)
    providers = None
    if spec.providers_file is not None:
        providers = load_providers(registry, spec.providers_file(settings))
        for gap in providers.report(registry):
            log.warning("provider gap", detail=gap)
    findings = None
    if spec.findings_file is not None:
        findings = load_findings(spec.findings_file(settings))
    url = settings.resolved_database_url()

    pool = await _connect_with_retry(url, settings, stop)
    if pool is None:
        return
    tasks: list[asyncio.Task[object]] = []
    producer = kafka.make_producer(settings.kafka, client_id=f"carelink-{spec.name}-relay")
    broker = kafka.make_broker(
        settings.kafka, client_id=f"carelink-{spec.name}", logger=broker_logger(spec.name)
    )
    server: uvicorn.Server | None = None
    try:
        # Migrations are logged, not traced (a root span per statement otherwise).
        with tracing.untraced():
            async with pool.acquire() as conn:
                applied = await db.migrate(
                    conn,
                    db.load_migrations(
                        [
                            ("runtime", db.RUNTIME_MIGRATIONS),
                            *spec.extra_migrations,
                            (spec.name, spec.migrations),
                        ]
                    ),
                    lock_timeout_s=settings.migration_lock_timeout_s,
                )
        log.info("database ready", migrations_applied=len(applied))
        # Every service makes sure all topics exist: adding a hospital to the registry
        # creates its topics at the next start, whichever service starts first.
        await kafka.ensure_topics(
            settings.kafka, all_topics(registry.hospital_ids, settings.kafka.durability)
        )

        context = ServiceContext(
            settings=settings,
            pool=pool,
            registry=registry,
            loaded_policies=policies,
            loaded_providers=providers,
            loaded_findings=findings,
        )
        pipeline = Pipeline(
            service=spec.name,
            consumer=spec.name,
            pool=pool,
            handler=spec.handler(context),
            retry=RetryPolicy(
                settings.retry_attempts, settings.retry_base_delay_s, settings.retry_max_delay_s
            ),
            max_record_bytes=settings.kafka.max_record_bytes,
            oversize=spec.oversize,
        )
        relay = OutboxRelay(
            service=spec.name,
            database_url=url,
            producer=producer,
            batch_size=settings.outbox_batch_size,
            poll_interval_s=settings.outbox_poll_interval_s,
        )
        await producer.start()
        tasks.append(asyncio.create_task(relay.run(stop), name="outbox-relay"))
        # Published outbox rows and old inbox ids are deleted on an interval (tables stay
        # bounded); every instance runs it, they skip each other's rows.
        retention = RetentionPolicy.from_settings(settings)
        # Background loops (retention, deadline scans …) are nobody's referral: not traced.
        with tracing.untraced():
            tasks.append(
                asyncio.create_task(
                    run_retention(pool, service=spec.name, policy=retention, stop=stop),
                    name="retention",
                )
            )
            for extra in spec.extra_tasks:
                tasks.append(asyncio.create_task(_as_coro(extra(context, stop)), name="extra"))

        kafka.subscribe(
            broker,
            list(spec.topics(registry)),
            group_id=settings.group_id,
            settings=settings.kafka,
            handle=pipeline,
            handle_batch=pipeline.handle_batch,
            batch_size=settings.consumer_batch_size,
        )
        await broker.start()

        # Probes and scrapes are not traced (their URLs neither: tracing.instrument_app).
        async def broker_ok() -> bool:
            with tracing.untraced():
                return await broker.ping(timeout=2)

        async def database_ok() -> bool:
            with tracing.untraced():
                return await db.ping(pool)

        async def sample_outbox() -> None:
            with tracing.untraced():
                async with pool.acquire(timeout=2) as conn:
                    await metrics.sample_outbox(conn, spec.name)

        app = health_app(
            service=spec.name,
            live=lambda: all(not t.done() for t in tasks),
            checks={"broker": broker_ok, "database": database_ok},
            collectors=[sample_outbox],
        )
        if spec.routes is not None:
            spec.routes(app, context)
        tracing.instrument_app(app)
        server = _QuietServer(
            uvicorn.Config(
                app,
                host=settings.health_host,
                port=settings.health_port,
                log_config=None,
                lifespan="off",
            )
        )
        tasks.append(asyncio.create_task(server.serve(), name="health"))
        log.info(
            "service started",
            health_port=settings.health_port,
            topics=len(spec.topics(registry)),
        )
        await stop.wait()
        log.info("service stopping")
    finally:
        stop.set()
        await _shutdown(broker, producer, pool, server, tasks, settings.shutdown_grace_s)
        log.info("service stopped")


async def _shutdown(
    broker: object,
    producer: object,
    pool: asyncpg.Pool,
    server: uvicorn.Server | None,
    tasks: list[asyncio.Task[object]],
    grace_s: float,
) -> None:
    async def steps() -> None:
        with contextlib.suppress(Exception):
            await broker.stop()  # type: ignore[attr-defined]
        if server is not None:
            server.should_exit = True
        # The relay sees `stop`, drains committed rows and returns.
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await producer.stop()  # type: ignore[attr-defined]
        await pool.close()

    try:
        await asyncio.wait_for(steps(), timeout=grace_s)
    except TimeoutError:
        log.warning("graceful shutdown took too long, cancelling", grace_s=grace_s)
        for task in tasks:
            task.cancel()
        pool.terminate()


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service's lifespan owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _connect_with_retry(
    url: str, settings: ServiceSettings, stop: asyncio.Event
) -> asyncpg.Pool | None:
    """The database may start after us (compose, a restart): wait for it, bounded by stop."""
    delay = settings.retry_base_delay_s
    while not stop.is_set():
        try:
            return await db.create_pool(
                url, min_size=settings.db_pool_min, max_size=settings.db_pool_max
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("database not reachable yet", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, settings.retry_max_delay_s)
    return None


async def _as_coro(value: object) -> object:
    return await value  # type: ignore[misc]


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)


def main(spec: ServiceSpec[S]) -> None:
    """Entry point of `python -m services.<name>`: settings from the environment."""
    settings = spec.settings()
    configure_logging(
        service=spec.name,
        level=settings.log_level,
        fmt=settings.log_format,
        log_file=settings.log_file,
    )
    # Traces only when the standard OTEL_* settings ask for them (services.lib.runtime.tracing).
    tracing.setup(spec.name)
    try:
        asyncio.run(run_service(spec, settings))
    except PolicyError as exc:
        # A malformed registry or policy file: say which and where, without a traceback.
        log.error("configuration error, not starting", error=str(exc))
        print(f"carelink {spec.name}: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)
    finally:
        tracing.shutdown()  # the spans still queued go out before the process ends
