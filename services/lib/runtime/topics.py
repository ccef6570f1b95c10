"""`python -m services.lib.runtime.topics [--create | --check]`: every topic as declared.

Lists every topic of the catalogue (contracts/topics.py) for the registered hospitals
with its partitions, replication factor, `min.insync.replicas` and retention;
`--create` creates the missing ones as declared (run once before the services in
docker-compose; services also do it at start); `--check` compares the topics that
exist with the catalogue and exits 1 when one is missing or differs (a topic created
before its retention was declared, say). Reads only the CARELINK_KAFKA_* settings
(`CARELINK_KAFKA_REPLICATION_FACTOR` / `_MIN_INSYNC_REPLICAS` for the durability)
and the hospital registry.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import DAY_MS, TopicSpec, all_topics
from services.lib.policy import load_registry
from services.lib.runtime.kafka import client_options, ensure_topics
from services.lib.runtime.settings import REPO_ROOT, KafkaSettings


@dataclass(frozen=True)
class Observed:
    """A topic as the broker describes it."""

    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


async def describe(settings: KafkaSettings, names: Sequence[str]) -> dict[str, Observed]:
    """Partitions, replication factor and topic configs of those of `names` that exist."""
    admin = AIOKafkaAdminClient(**client_options(settings), client_id="carelink-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        present = [name for name in names if name in existing]
        if not present:
            return {}
        metadata = {t["topic"]: t for t in await admin.describe_topics(present)}
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
        )
        configs: dict[str, dict[str, str]] = {}
        for response in responses:
            for resource in response.resources:
                _code, _message, _type, name, entries = resource[:5]
                configs[name] = {entry[0]: entry[1] for entry in entries if entry[1] is not None}
        return {
            name: Observed(
                partitions=len(metadata[name]["partitions"]),
                replication_factor=_replication_factor(metadata[name]),
                configs=configs.get(name, {}),
            )
            for name in present
        }
    finally:
        await admin.close()


def differences(spec: TopicSpec, observed: Observed | None) -> list[str]:
    """How a topic on the broker differs from its declaration; empty when it matches."""
    if observed is None:
        return ["missing"]
    found = []
    if observed.partitions != spec.partitions:
        found.append(f"partitions {observed.partitions}, declared {spec.partitions}")
    if observed.replication_factor != spec.replication_factor:
        found.append(
            f"replication factor {observed.replication_factor}, declared {spec.replication_factor}"
        )
    for key, value in spec.configs().items():
        actual = observed.configs.get(key)
        if actual != value:
            found.append(f"{key} {actual if actual is not None else 'unset'}, declared {value}")
    return found


def _replication_factor(topic: dict[str, Any]) -> int:
    partitions = topic["partitions"]
    return min((len(p["replicas"]) for p in partitions), default=0)


def _retention(spec: TopicSpec) -> str:
    if spec.retention_ms is None:
        return "broker default"
    days, rest = divmod(spec.retention_ms, DAY_MS)
    return f"{days}d" if not rest else f"{spec.retention_ms}ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.lib.runtime.topics",
        description="List, create or check every topic carelink needs for the registered "
        "hospitals, as declared in contracts/topics.py.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--create", action="store_true", help="create the missing topics")
    action.add_argument(
        "--check",
        action="store_true",
        help="compare the broker's topics with the declarations; exit 1 on any difference",
    )
    parser.add_argument(
        "--registry",
        default=None,
        help="registry file (default: $CARELINK_REGISTRY_FILE or "
        f"{REPO_ROOT / 'deploy/config/registry.yaml'})",
    )
    args = parser.parse_args(argv)
    registry = load_registry(args.registry)
    settings = KafkaSettings()
    specs = all_topics(registry.hospital_ids, settings.durability)
    if args.create:
        created = asyncio.run(ensure_topics(settings, specs))
        print(f"{len(created)} topics created, {len(specs) - len(created)} already existed")
        return 0
    if args.check:
        observed = asyncio.run(describe(settings, [spec.name for spec in specs]))
        drifted = 0
        for spec in specs:
            found = differences(spec, observed.get(spec.name))
            drifted += bool(found)
            print(f"{spec.name}\t{'; '.join(found) if found else 'as declared'}")
        print(f"{drifted} of {len(specs)} topics differ from the catalogue")
        return 1 if drifted else 0
    print("TOPIC\tPARTITIONS\tREPLICATION\tMIN.INSYNC\tRETENTION")
    for spec in specs:
        print(
            f"{spec.name}\t{spec.partitions}\t{spec.replication_factor}\t"
            f"{spec.min_insync_replicas}\t{_retention(spec)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
