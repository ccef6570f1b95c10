"""Tansu + PostgreSQL as child processes: no Docker, no downloads, ready in about a second."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from services.tools.localinfra.infrastructure import Endpoints, Infrastructure
from services.tools.localinfra.postgres import EmbeddedPostgres
from services.tools.localinfra.tansu import TansuBroker

log = logging.getLogger(__name__)


def make_instance_dir(base_dir: Path) -> Path:
    """A fresh directory of our own under base_dir, so concurrent sessions never share one."""
    base_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="localinfra-", dir=base_dir)).resolve()


class EmbeddedInfrastructure(Infrastructure):
    def __init__(
        self,
        instance_dir: Path,
        broker: TansuBroker,
        postgres: EmbeddedPostgres,
        *,
        keep_data: bool,
    ) -> None:
        super().__init__(
            Endpoints(
                kafka_bootstrap=broker.bootstrap,
                postgres_url=postgres.url,
                kind="embedded",
                log_dir=instance_dir,
            )
        )
        self.instance_dir = instance_dir
        self.broker = broker
        self.postgres = postgres
        self.keep_data = keep_data

    @classmethod
    def start(
        cls, base_dir: Path, *, postgres_fsync: bool = False, keep_data: bool = True
    ) -> EmbeddedInfrastructure:
        instance_dir = make_instance_dir(base_dir)
        broker = TansuBroker(instance_dir)
        postgres = EmbeddedPostgres(instance_dir, fsync=postgres_fsync)
        try:
            broker.start()
            postgres.start()
        except BaseException:
            postgres.stop()
            broker.stop()
            if not keep_data or postgres.data_outside_work_dir:
                postgres.remove_data()
            raise
        return cls(instance_dir, broker, postgres, keep_data=keep_data)

    def stop(self) -> None:
        # Signal both first so their shutdowns overlap; each stop() then waits.
        self.broker.begin_stop()
        self.postgres.begin_stop()
        self.broker.stop()
        self.postgres.stop()
        # Data outside base_dir (see EmbeddedPostgres) has nobody else to clean it up.
        if not self.keep_data or self.postgres.data_outside_work_dir:
            self.postgres.remove_data()

    def problems(self) -> list[str]:
        return [p for p in (self.broker.problem(), self.postgres.problem()) if p]

    @property
    def broker_pid(self) -> int | None:
        return self.broker.pid if self.broker.running else None

    @property
    def postgres_pid(self) -> int | None:
        return self.postgres.pid if self.postgres.running else None

    def freeze_broker(self) -> None:
        """SIGSTOP the broker: requests hang (no errors) until thaw_broker()."""
        self.broker.freeze()

    def thaw_broker(self) -> None:
        self.broker.thaw()

    def restart_postgres(self) -> None:
        """Fast-shutdown PostgreSQL and start it on the same port and data; blocks until ready."""
        self.postgres.restart()
