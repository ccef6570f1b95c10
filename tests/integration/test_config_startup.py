"""Configuration is checked at start, and hospitals are configuration, not code.

A service started on a malformed policy directory, registry, findings vocabulary or
providers file stops at once with exit code 2 and names the file and the field (the
providers file its line too). A hospital added to a registry copy gets its two topics
from `python -m services.lib.runtime.topics --create`, with no code change.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from contracts.topics import HOSPITAL_PARTITIONS, referrals, updates
from services.intake.app import _topics
from services.lib.policy import load_registry
from services.tools.localinfra import Endpoints, ensure_databases

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

REPO = Path(__file__).resolve().parents[2]
POLICY_DIR = REPO / "deploy" / "config" / "policy"
REGISTRY_FILE = REPO / "deploy" / "config" / "registry.yaml"
FINDINGS_FILE = REPO / "deploy" / "config" / "findings.yaml"
START_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(**carelink: str) -> dict[str, str]:
    """The test process's environment without any CARELINK_ setting, plus the given ones."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARELINK_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(carelink)
    return env


async def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        args,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
async def database_url(endpoints: Endpoints) -> str:
    name = f"cfg_{uuid.uuid4().hex[:10]}"
    return (await ensure_databases(endpoints.postgres_url, [name]))[name]


def service_env(endpoints: Endpoints, database_url: str, **extra: str) -> dict[str, str]:
    return child_env(
        CARELINK_DATABASE_URL=database_url,
        CARELINK_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap,
        CARELINK_HEALTH_PORT=str(free_port()),
        **extra,
    )


def registry_text() -> str:
    return REGISTRY_FILE.read_text(encoding="utf-8")


async def test_intake_with_a_malformed_policy_file_exits_2_naming_the_file_and_field(
    endpoints: Endpoints, database_url: str, tmp_path: Path
) -> None:
    policy_dir = tmp_path / "policy"
    policy_dir.mkdir()
    for file in POLICY_DIR.glob("*.yaml"):
        shutil.copy(file, policy_dir / file.name)
    broken = policy_dir / "2025.yaml"
    text = broken.read_text(encoding="utf-8")
    assert "annual_cap_krw: 1800000\n" in text
    broken.write_text(text.replace("annual_cap_krw: 1800000\n", 'annual_cap_krw: "lots"\n'))

    result = await run(
        [sys.executable, "-m", "services.intake"],
        service_env(endpoints, database_url, CARELINK_POLICY_DIR=str(policy_dir)),
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "2025.yaml" in result.stderr
    assert "annual_cap_krw" in result.stderr


async def test_intake_with_a_malformed_registry_exits_2_naming_the_file_and_field(
    endpoints: Endpoints, database_url: str, tmp_path: Path
) -> None:
    registry = tmp_path / "broken-registry.yaml"
    text = registry_text()
    assert "  - id: police-hospital\n" in text
    registry.write_text(text.replace("  - id: police-hospital\n", "  - id: Bad_ID\n"))

    result = await run(
        [sys.executable, "-m", "services.intake"],
        service_env(endpoints, database_url, CARELINK_REGISTRY_FILE=str(registry)),
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "broken-registry.yaml" in result.stderr
    assert "hospitals.0.id" in result.stderr


async def test_a_hospital_added_to_the_registry_gets_its_topics_without_code_change(
    endpoints: Endpoints, tmp_path: Path
) -> None:
    hospital_id = f"test-{uuid.uuid4().hex[:6]}"
    registry = tmp_path / "registry.yaml"
    text = registry_text()
    entry = (
        f"  - id: {hospital_id}\n"
        "    name: {ko: 테스트병원, en: Test Hospital}\n"
        "    district: Gangdong-gu\n"
    )
    assert "\ncentres:\n" in text
    registry.write_text(text.replace("\ncentres:\n", f"{entry}\ncentres:\n"), encoding="utf-8")

    result = await run(
        [
            sys.executable,
            "-m",
            "services.lib.runtime.topics",
            "--create",
            "--registry",
            str(registry),
        ],
        child_env(CARELINK_KAFKA_BOOTSTRAP=endpoints.kafka_bootstrap),
    )
    assert result.returncode == 0, result.stderr[-2000:]

    wanted = [referrals(hospital_id), updates(hospital_id)]
    admin = AIOKafkaAdminClient(bootstrap_servers=endpoints.kafka_bootstrap)
    await admin.start()
    try:
        names = set(await admin.list_topics())
        described = await admin.describe_topics(wanted)
    finally:
        await admin.close()

    assert set(wanted) <= names
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    assert partitions == dict.fromkeys(wanted, HOSPITAL_PARTITIONS)
    assert referrals(hospital_id) in _topics(load_registry(registry))


@pytest.mark.parametrize("service", ["scheduling", "outcome"])
async def test_a_malformed_findings_vocabulary_stops_the_service_naming_file_and_field(
    endpoints: Endpoints, database_url: str, tmp_path: Path, service: str
) -> None:
    findings = tmp_path / "broken-findings.yaml"
    text = FINDINGS_FILE.read_text(encoding="utf-8")
    assert "  - code: fall-risk\n" in text
    findings.write_text(text.replace("  - code: fall-risk\n", "  - code: Fall Risk\n"))

    result = await run(
        [sys.executable, "-m", f"services.{service}"],
        service_env(endpoints, database_url, CARELINK_FINDINGS_FILE=str(findings)),
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "broken-findings.yaml" in result.stderr
    assert "findings.0.code" in result.stderr


async def test_referral_with_a_malformed_providers_file_exits_2_naming_file_field_and_line(
    endpoints: Endpoints, database_url: str, tmp_path: Path
) -> None:
    providers = tmp_path / "broken-providers.yaml"
    text = (REPO / "deploy" / "config" / "providers.yaml").read_text(encoding="utf-8")
    assert "    districts: [Songpa-gu]\n" in text
    broken = text.replace("    districts: [Songpa-gu]\n", "    districts: [Suwon-si]\n")
    providers.write_text(broken, encoding="utf-8")
    line = broken.splitlines().index("    districts: [Suwon-si]") + 1

    result = await run(
        [sys.executable, "-m", "services.referral"],
        service_env(endpoints, database_url, CARELINK_PROVIDERS_FILE=str(providers)),
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "broken-providers.yaml" in result.stderr
    assert "providers.5.districts.0" in result.stderr
    assert f"(line {line})" in result.stderr
