"""The local infrastructure: embedded Tansu + PostgreSQL, and the choice between kinds."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

import services.tools.localinfra.containers as containers_module
from services.tools.localinfra import (
    Infrastructure,
    InfrastructureError,
    choose_kind,
    database_url,
    ensure_databases,
    start_infrastructure,
)

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    with start_infrastructure(tmp_path_factory.mktemp("infra"), kind="embedded") as running:
        yield running


def _alive(pid: int) -> bool:
    """True while pid is a live process; a zombie nobody reaped counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/")[0])


def _wait_gone(pids: list[int], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in pids if _alive(p)], "server processes survived"


async def _select_one(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


async def test_produce_and_consume_on_a_created_topic(infra: Infrastructure) -> None:
    bootstrap = infra.endpoints.kafka_bootstrap
    topic = f"localinfra-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        assert await producer.partitions_for(topic) == {0, 1, 2}
        await producer.send_and_wait(topic, b"hello", key=b"case-1", partition=1)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 1)])
        record = await asyncio.wait_for(consumer.getone(), 10)
    finally:
        await consumer.stop()
    assert (record.key, record.value) == (b"case-1", b"hello")


async def test_postgres_answers_queries(infra: Infrastructure) -> None:
    conn = await asyncpg.connect(infra.endpoints.postgres_url)
    try:
        version = await conn.fetchval("SHOW server_version_num")
        upper = await conn.fetchval("SELECT upper('æøå')")
    finally:
        await conn.close()
    assert int(version) >= 170000
    assert upper == "ÆØÅ"  # builtin C.UTF-8 locale: Unicode-aware on every machine


async def test_ensure_databases_creates_once_and_tolerates_races(infra: Infrastructure) -> None:
    admin = infra.endpoints.postgres_url
    names = [f"li_{uuid.uuid4().hex[:8]}", f"li_{uuid.uuid4().hex[:8]}"]
    first, second = await asyncio.gather(
        ensure_databases(admin, names), ensure_databases(admin, names)
    )
    again = await ensure_databases(admin, names)
    assert first == second == again
    assert set(again) == set(names)
    for name, url in again.items():
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT current_database()") == name
        finally:
            await conn.close()


async def test_two_side_by_side_then_stop_frees_everything(
    infra: Infrastructure, tmp_path: Path
) -> None:
    other = start_infrastructure(tmp_path, kind="embedded")
    try:
        assert other.endpoints.kafka_bootstrap != infra.endpoints.kafka_bootstrap
        assert other.endpoints.postgres_url != infra.endpoints.postgres_url
        assert other.endpoints.log_dir is not None
        assert other.endpoints.log_dir.parent == tmp_path  # pytest's tmp_path is resolved
        for running in (infra, other):
            assert await _select_one(running.endpoints.postgres_url) == 1
            producer = AIOKafkaProducer(bootstrap_servers=running.endpoints.kafka_bootstrap)
            await producer.start()
            try:
                await producer.send_and_wait(f"side-{uuid.uuid4().hex[:8]}", b"x")
            finally:
                await producer.stop()
        pids = [other.broker_pid, other.postgres_pid]
        assert all(pids)
    finally:
        other.stop()
    _wait_gone([p for p in pids if p])
    assert other.broker_pid is None
    assert other.postgres_pid is None
    for port in (_port(other.endpoints.kafka_bootstrap), _port(other.endpoints.postgres_url)):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    other.stop()  # a second stop is harmless
    assert (other.endpoints.log_dir / "postgres.log").exists()


async def test_a_taken_port_is_retried_with_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import services.tools.localinfra.postgres as postgres_module
    import services.tools.localinfra.processes as processes_module
    import services.tools.localinfra.tansu as tansu_module

    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()  # accepts connections but never answers, like a busy stranger
    taken = squatter.getsockname()[1]
    real_free_port = processes_module.free_port
    for module in (tansu_module, postgres_module):
        offers = iter([taken])
        monkeypatch.setattr(module, "free_port", lambda o=offers: next(o, None) or real_free_port())
    try:
        started = time.monotonic()
        with start_infrastructure(tmp_path, kind="embedded") as infra:
            assert _port(infra.endpoints.kafka_bootstrap) != taken
            assert _port(infra.endpoints.postgres_url) != taken
            assert await _select_one(infra.endpoints.postgres_url) == 1
            log_dir = infra.endpoints.log_dir
            assert log_dir is not None
            for log_name in ("broker.log", "postgres.log"):
                assert "in use" in (log_dir / log_name).read_text().lower()  # really retried
        assert time.monotonic() - started < 10
    finally:
        squatter.close()


async def test_frozen_broker_holds_a_produce_until_thawed(infra: Infrastructure) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.endpoints.kafka_bootstrap)
    await producer.start()
    topic = f"freeze-{uuid.uuid4().hex[:8]}"
    try:
        await producer.send_and_wait(topic, b"before")  # connection and metadata are warm
        infra.freeze_broker()
        try:
            pending = asyncio.ensure_future(producer.send_and_wait(topic, b"during"))
            await asyncio.sleep(1.0)
            assert not pending.done()
        finally:
            infra.thaw_broker()
        metadata = await asyncio.wait_for(pending, 15)
        assert metadata.offset >= 0
    finally:
        await producer.stop()


async def test_restart_postgres_keeps_data_and_port(infra: Infrastructure) -> None:
    url = infra.endpoints.postgres_url
    table = f"kept_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE TABLE {table} (v text); INSERT INTO {table} VALUES ('kept')")
    finally:
        await conn.close()
    before = infra.postgres_pid
    infra.restart_postgres()
    assert infra.postgres_pid not in (None, before)
    assert infra.endpoints.postgres_url == url
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval(f"SELECT v FROM {table}") == "kept"
    finally:
        await conn.close()


async def test_explicit_settings_adopt_running_servers(
    infra: Infrastructure, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELINK_KAFKA_BOOTSTRAP", infra.endpoints.kafka_bootstrap)
    monkeypatch.setenv("CARELINK_POSTGRES_URL", infra.endpoints.postgres_url)
    monkeypatch.delenv("CARELINK_LOCALINFRA", raising=False)
    base = tmp_path / "unused"
    with start_infrastructure(base) as adopted:
        assert adopted.endpoints.kind == "explicit"
        assert adopted.endpoints.kafka_bootstrap == infra.endpoints.kafka_bootstrap
        assert adopted.endpoints.postgres_url == infra.endpoints.postgres_url
        assert adopted.endpoints.log_dir is None
        assert adopted.broker_pid is None
        with pytest.raises(NotImplementedError, match="embedded"):
            adopted.freeze_broker()
    assert not base.exists()  # started nothing, wrote nothing
    assert await _select_one(infra.endpoints.postgres_url) == 1  # stopped nothing


def test_a_killed_parent_takes_its_servers_along(tmp_path: Path) -> None:
    script = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from services.tools.localinfra import start_infrastructure\n"
        f"infra = start_infrastructure(Path({str(tmp_path)!r}), kind='embedded')\n"
        "print(json.dumps([infra.broker_pid, infra.postgres_pid]), flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()  # pytest-timeout guards a hang
        pids = json.loads(line)
        assert all(_alive(p) for p in pids)
        os.kill(parent.pid, signal.SIGKILL)  # no atexit, no finally: only the kernel helps
        parent.wait(10)
        _wait_gone(pids)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        # As root under pytest's private tmp dir the data lives in the system temp
        # dir (a symlink points there); the dead parent could not remove it.
        for link in tmp_path.glob("localinfra-*/pgdata"):
            if link.is_symlink():
                shutil.rmtree(link.resolve().parent, ignore_errors=True)


def test_choice_of_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(containers_module, "docker_available", lambda timeout=2.0: False)
    both = {"CARELINK_KAFKA_BOOTSTRAP": "h:1", "CARELINK_POSTGRES_URL": "postgresql://h/p"}
    assert choose_kind(None, both) == "explicit"
    assert choose_kind(None, {}) == "embedded"
    assert choose_kind(None, {"CARELINK_LOCALINFRA": "embedded", **both}) == "embedded"
    assert choose_kind("embedded", {"CARELINK_LOCALINFRA": "containers"}) == "embedded"
    with pytest.raises(InfrastructureError, match="CARELINK_POSTGRES_URL"):
        choose_kind(None, {"CARELINK_KAFKA_BOOTSTRAP": "h:1"})
    with pytest.raises(InfrastructureError, match="Docker"):
        choose_kind("containers", {})
    with pytest.raises(InfrastructureError, match="needs"):
        choose_kind("explicit", {})
    with pytest.raises(InfrastructureError, match="unknown"):
        choose_kind(None, {"CARELINK_LOCALINFRA": "kubernetes"})
    monkeypatch.setattr(containers_module, "docker_available", lambda timeout=2.0: True)
    assert choose_kind(None, {}) == "containers"


class _FakeContainer:
    """Stands in for a testcontainers container where no Docker engine runs."""

    def __init__(self, image: str, **kwargs: object) -> None:
        self.image = image
        self.kwargs = kwargs
        self.calls: list[str] = []
        self.fail_start = False
        _FakeContainer.made.append(self)

    made: list[_FakeContainer] = []

    def with_command(self, command: list[str]) -> _FakeContainer:
        self.calls.append("command:" + " ".join(command))
        return self

    def with_kraft(self) -> _FakeContainer:
        self.calls.append("kraft")
        return self

    def with_env(self, key: str, value: str) -> _FakeContainer:
        self.calls.append(f"env:{key}={value}")
        return self

    def start(self, timeout: int = 30) -> _FakeContainer:
        if self.fail_start:
            raise RuntimeError("image pull failed")
        self.calls.append("start")
        return self

    def get_bootstrap_server(self) -> str:
        return "localhost:39092"

    def get_connection_url(self, driver: object = "psycopg2") -> str:
        assert driver is None
        return f"postgresql://postgres:{self.kwargs['password']}@localhost:35432/postgres"

    def get_logs(self) -> tuple[bytes, bytes]:
        return (b"out\n", b"err\n")

    def stop(self) -> None:
        self.calls.append("stop")


class _FailingKafka(_FakeContainer):
    def start(self, timeout: int = 30) -> _FakeContainer:
        raise RuntimeError("kafka never started")


def test_containers_start_and_stop_in_order_without_docker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _FakeContainer.made.clear()
    monkeypatch.setattr(
        containers_module, "_container_classes", lambda: (_FakeContainer, _FakeContainer)
    )
    monkeypatch.setattr(containers_module, "run_blocking", lambda factory: None)
    infra = containers_module.ContainerInfrastructure.start(tmp_path)
    postgres, kafka = _FakeContainer.made
    assert infra.endpoints.kind == "containers"
    assert infra.endpoints.kafka_bootstrap == "localhost:39092"
    assert infra.endpoints.postgres_url.startswith("postgresql://postgres:")
    assert "kraft" in kafka.calls
    assert "env:KAFKA_GROUP_MIN_SESSION_TIMEOUT_MS=1000" in kafka.calls
    assert postgres.kwargs["driver"] is None
    with pytest.raises(NotImplementedError, match="restart_postgres"):
        infra.restart_postgres()
    infra.stop()
    infra.stop()
    assert kafka.calls[-1] == postgres.calls[-1] == "stop"
    assert kafka.calls.count("stop") == 1
    assert (tmp_path / "kafka.log").read_bytes() == b"out\nerr\n"

    # A failed Kafka start must not leave the PostgreSQL container behind.
    _FakeContainer.made.clear()
    monkeypatch.setattr(
        containers_module, "_container_classes", lambda: (_FailingKafka, _FakeContainer)
    )
    with pytest.raises(RuntimeError, match="kafka never started"):
        containers_module.ContainerInfrastructure.start(tmp_path)
    postgres, _ = _FakeContainer.made
    assert postgres.calls[-1] == "stop"


def test_database_url_keeps_credentials_and_options() -> None:
    admin = "postgresql://app:s3cret@db.example:5433/postgres?sslmode=require"
    assert (
        database_url(admin, "carelink_intake")
        == "postgresql://app:s3cret@db.example:5433/carelink_intake?sslmode=require"
    )
