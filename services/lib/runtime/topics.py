"""`python -m services.lib.runtime.topics --create`: create every topic with its partition count.

Run once before the services in docker-compose; services also do it at start.
Reads only the CARELINK_KAFKA_* settings and the hospital registry.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from contracts.topics import all_topics
from services.lib.policy import load_registry
from services.lib.runtime.kafka import ensure_topics
from services.lib.runtime.settings import REPO_ROOT, KafkaSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.lib.runtime.topics",
        description="List, or create, every topic carelink needs for the registered hospitals.",
    )
    parser.add_argument("--create", action="store_true", help="create the missing topics")
    parser.add_argument(
        "--registry",
        default=None,
        help="registry file (default: $CARELINK_REGISTRY_FILE or "
        f"{REPO_ROOT / 'deploy/config/registry.yaml'})",
    )
    args = parser.parse_args(argv)
    registry = load_registry(args.registry)
    specs = all_topics(registry.hospital_ids)
    if not args.create:
        for spec in specs:
            print(f"{spec.name}\t{spec.partitions}")
        return 0
    created = asyncio.run(ensure_topics(KafkaSettings(), specs))
    print(f"{len(created)} topics created, {len(specs) - len(created)} already existed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
