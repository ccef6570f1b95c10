"""Servers for the integration and end-to-end tests, picked once per session.

`services.tools.localinfra` chooses: CARELINK_KAFKA_BOOTSTRAP + CARELINK_POSTGRES_URL if
set, else testcontainers when Docker answers, else the embedded Tansu broker and
PostgreSQL 18. Names are prefixed per session so sessions sharing servers never meet.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.tools.localinfra import Endpoints, Infrastructure, start_infrastructure
from services.tools.simulators import accounts
from services.tools.simulators.staff import Staff
from services.tools.stack import LocalSystem, SystemInfo

SESSION = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    infra = start_infrastructure(tmp_path_factory.mktemp("infra"))
    try:
        yield infra
    finally:
        infra.stop()


@pytest.fixture(scope="session")
def endpoints(infrastructure: Infrastructure) -> Endpoints:
    return infrastructure.endpoints


@pytest.fixture(scope="session")
def staff_setup(tmp_path_factory: pytest.TempPathFactory) -> accounts.StaffSetup:
    """Simulated coordinators' console accounts (two per centre the simulators refer to),
    beside the demo accounts, for the session's console."""
    setup = accounts.prepare(tmp_path_factory.mktemp("staff"), accounts.simulated_centres(), 2)
    # Plus one account nothing else signs in with, so its old (scrypt) hash is still there
    # whenever the upgrade test runs, whatever ran before it.
    accounts.write_users_file(setup.users_file, [*setup.accounts, UPGRADE_PROBE])
    return setup


# Outside `staff_setup.accounts` on purpose: the simulators never use it.
UPGRADE_PROBE = accounts.Account("sim-upgrade-probe", secrets.token_urlsafe(18), "centre-songpa-gu")


@pytest.fixture(scope="session")
def upgrade_probe(staff_setup: accounts.StaffSetup) -> accounts.Account:
    """A console account whose users-file hash is still scrypt (see staff_setup)."""
    return UPGRADE_PROBE


@pytest.fixture(scope="session")
def system(
    infrastructure: Infrastructure,
    tmp_path_factory: pytest.TempPathFactory,
    staff_setup: accounts.StaffSetup,
) -> Iterator[LocalSystem]:
    """The four services and the console as processes on the session's servers."""
    local = LocalSystem(
        tmp_path_factory.mktemp("system"),
        infrastructure=infrastructure,
        name_prefix=f"t{SESSION}_",
        extra_env={
            "CARELINK_LOG_LEVEL": "INFO",
            "CARELINK_DEADLINE_SCAN_INTERVAL_S": "1",
            **staff_setup.env,
        },
    )
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def system_info(system: LocalSystem) -> SystemInfo:
    assert system.info is not None
    return system.info


@pytest.fixture
def log_dir(system: LocalSystem) -> Path:
    return system.base_dir / "logs"


@pytest.fixture(scope="session")
def staff_accounts(staff_setup: accounts.StaffSetup) -> list[accounts.Account]:
    return list(staff_setup.accounts)


@pytest.fixture
async def staff(
    system_info: SystemInfo, staff_accounts: list[accounts.Account]
) -> AsyncIterator[Staff]:
    """Coordinators working through the console's HTTP API, one signed in per centre."""
    async with Staff(system_info.console, staff_accounts) as desk:
        yield desk


@contextlib.asynccontextmanager
async def _connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def intake_db(system_info: SystemInfo) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the running system's intake database (for audit checks)."""
    async with _connect(system_info.databases["intake"]) as conn:
        yield conn


@pytest.fixture
async def referral_db(system_info: SystemInfo) -> AsyncIterator[asyncpg.Connection]:
    async with _connect(system_info.databases["referral"]) as conn:
        yield conn
