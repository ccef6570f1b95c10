"""A social workers' portal as a process of its own (`python -m services.portal`) on the
tests' broker and PostgreSQL, for two hospitals of a registry made for the test (fresh
ids: its topics are its own), with one user per hospital."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from contracts.topics import all_topics
from services.lib.runtime.kafka import ensure_topics
from services.lib.runtime.settings import REPO_ROOT, KafkaSettings
from services.lib.signin import hash_password_sync
from services.portal import form
from services.tools.localinfra import Endpoints, ensure_databases
from services.tools.simulators.referrals import FakeHospital
from services.tools.stack.system import EMBEDDED_KAFKA_ENV, ServiceProcess


@dataclass
class PortalUser:
    username: str
    password: str
    hospital_id: str


@dataclass
class RunningPortal:
    url: str
    database_url: str
    users: dict[str, PortalUser]  # by hospital id
    other_hospital: str  # registered, not served
    process: ServiceProcess

    @property
    def hospitals(self) -> list[str]:
        return sorted(self.users)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_portal(endpoints: Endpoints, base: Path) -> RunningPortal:
    tag = uuid.uuid4().hex[:8]
    served = [f"pt-{tag}-a", f"pt-{tag}-b"]
    other = f"pt-{tag}-c"
    registry: dict[str, Any] = yaml.safe_load(
        (REPO_ROOT / "deploy" / "config" / "registry.yaml").read_text(encoding="utf-8")
    )
    for hospital_id in [*served, other]:
        registry["hospitals"].append(
            {"id": hospital_id, "name": {"ko": "시험병원", "en": "Test"}, "district": "Songpa-gu"}
        )
    base.mkdir(parents=True, exist_ok=True)
    registry_file = base / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(registry, allow_unicode=True), encoding="utf-8")
    users = {h: PortalUser(f"sw-{h}", secrets.token_urlsafe(12), h) for h in served}
    users_file = base / "portal-users.yaml"
    users_file.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "users": [
                    {
                        "username": u.username,
                        "display_name": f"사회복지사 {u.hospital_id}",
                        "hospital_id": u.hospital_id,
                        "password": hash_password_sync(u.password),
                    }
                    for u in users.values()
                ],
            }
        ),
        encoding="utf-8",
    )
    name = f"it_portal_{tag}"
    database_url = asyncio.run(ensure_databases(endpoints.postgres_url, [name]))[name]
    kafka = KafkaSettings(bootstrap=endpoints.kafka_bootstrap)
    asyncio.run(ensure_topics(kafka, all_topics([*served, other])))
    port = _free_port()
    env = {
        **os.environ,
        "CARELINK_ENV": "local",
        "CARELINK_DATABASE_URL": database_url,
        "CARELINK_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        **(EMBEDDED_KAFKA_ENV if endpoints.kind == "embedded" else {}),
        "CARELINK_HEALTH_PORT": str(port),
        "CARELINK_REGISTRY_FILE": str(registry_file),
        "CARELINK_PORTAL_USERS_FILE": str(users_file),
        "CARELINK_PORTAL_SECRET_KEY": secrets.token_urlsafe(32),
        "CARELINK_GROUP_PREFIX": f"it-{tag}-",
        "CARELINK_LOG_FILE": str(base / "portal.log"),
        "CARELINK_LOG_FORMAT": "json",
        "CARELINK_OUTBOX_POLL_INTERVAL_S": "0.5",
        # A test's portal need not wait long for a graceful stop.
        "CARELINK_SHUTDOWN_GRACE_S": "3",
        "PYTHONPATH": str(REPO_ROOT),
    }
    process = ServiceProcess("portal", env, base / "portal.log")
    process.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if not process.running():
            stderr = (base / "portal.stderr").read_text(errors="replace")
            raise RuntimeError(f"the portal exited while starting:\n{stderr[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health/ready", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("the portal was not ready within 60 s")
        time.sleep(0.2)
    return RunningPortal(url, database_url, users, other, process)


async def signed_in(portal: RunningPortal, hospital_id: str) -> httpx.AsyncClient:
    """A browser-like client of that hospital's user, signed in through the page."""
    user = portal.users[hospital_id]
    client = httpx.AsyncClient(base_url=portal.url, timeout=20, follow_redirects=False)
    answer = await client.post(
        "/login", data={"username": user.username, "password": user.password, "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    return client


def valid_form(hospital_id: str, **overrides: Any) -> dict[str, list[str]]:
    """A complete referral form as a social worker fills it in (fake personal data)."""
    data = FakeHospital(hospital_id).submission(referral_id=f"P-{uuid.uuid4().hex[:12]}")
    values = form.form_of(data)
    values.update({k: v if isinstance(v, list) else [v] for k, v in overrides.items()})
    return values
