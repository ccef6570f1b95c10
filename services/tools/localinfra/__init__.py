"""A Kafka-protocol broker and PostgreSQL for `make run`, tests and benchmarks.

One choice, made the same way everywhere (see /work/shared/design.md, "Local
infrastructure"): explicit CARELINK_KAFKA_BOOTSTRAP + CARELINK_POSTGRES_URL,
else Apache Kafka and PostgreSQL in Docker via testcontainers, else the
embedded Tansu broker and PostgreSQL 18 as child processes.
CARELINK_LOCALINFRA=embedded|containers|explicit|auto forces the choice.

In a pytest session (start from a sync fixture: children spawned from the main
thread die with the process even on SIGKILL)::

    @pytest.fixture(scope="session")
    def infra(tmp_path_factory):
        with start_infrastructure(tmp_path_factory.mktemp("infra")) as running:
            yield running

    @pytest.fixture(scope="session")
    async def database_urls(infra):
        return await ensure_databases(infra.endpoints.postgres_url, ["carelink_intake"])

For people: `python -m services.tools.localinfra --database carelink_intake`.
"""

from services.tools.localinfra.databases import database_url, ensure_databases
from services.tools.localinfra.infrastructure import Endpoints, Infrastructure, InfrastructureError
from services.tools.localinfra.picker import choose_kind, start_infrastructure

__all__ = [
    "Endpoints",
    "Infrastructure",
    "InfrastructureError",
    "choose_kind",
    "database_url",
    "ensure_databases",
    "start_infrastructure",
]
