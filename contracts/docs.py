"""Generate the committed contract documents from the models in `contracts.catalog`.

One JSON Schema per message under `contracts/schemas/<ce_type>.json` and an
AsyncAPI 3.0 document `contracts/asyncapi.yaml` that references them. The output
is deterministic (no timestamps, stable key order) so that a drift test can
compare it byte for byte with the committed files, and every contract change
shows up in review.

    python -m contracts.docs          # write the files (what `make docs` runs)
    python -m contracts.docs --check  # exit 1 and list the files that drifted
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

import contracts
from contracts import topics
from contracts.catalog import Message, all_messages
from contracts.cloudevents import CONTENT_TYPE, SPEC_VERSION
from contracts.hospital_v1 import HOSPITAL_ID_PATTERN

# Paths in `render()` are relative to the repository root.
REPO_ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = "contracts/schemas"
ASYNCAPI_PATH = "contracts/asyncapi.yaml"

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

HOSPITAL_REFERRALS = "hospital.{hospital_id}.referrals"
HOSPITAL_UPDATES = "hospital.{hospital_id}.updates"
HOSPITAL_ACTOR = "hospital"
_REFERRAL_KEY = (
    "The hospital's `referral_id` (UTF-8): one referral stays in order on one partition."
)
# Who reads each channel. Writers come from the catalog's `producer`; readers are
# not part of a message's contract, so they are stated here.
_CHANNEL_INFO: dict[str, dict[str, Any]] = {
    HOSPITAL_REFERRALS: {
        "title": "Referrals from one hospital",
        "description": (
            "The hospital writes its referral events here and carelink's intake service "
            "reads them. Kafka ACLs let each hospital write only its own topic. A record "
            "whose `data.hospital_id` differs from the topic's hospital is rejected."
        ),
        "key": "referral_id",
        "key_description": _REFERRAL_KEY,
        "partitions": topics.HOSPITAL_PARTITIONS,
        "readers": ["intake"],
    },
    HOSPITAL_UPDATES: {
        "title": "Status updates for one hospital",
        "description": (
            "carelink writes one `carelink.referral.status-changed.v1` event per step of a "
            "referral; only that hospital reads this topic. Updates of one referral come "
            "in `sequence` order with no gaps; delivery is at-least-once, and a repeated "
            "record has the same `ce_id` and `sequence`. `status` follows the FHIR R4 Task "
            "state machine (revision 2 of the contract; the legal moves are the table in "
            "`contracts/fhir_task.py`); every update with a `reason` also carries "
            "`reason_ko`, the same reason in Korean."
        ),
        "key": "referral_id",
        "key_description": _REFERRAL_KEY,
        "partitions": topics.HOSPITAL_PARTITIONS,
        "readers": [HOSPITAL_ACTOR],
    },
    topics.CASES: {
        "title": "Internal case events",
        "description": (
            "The event log of every case inside carelink. Carries no personal data: only "
            "ids, an age band, district and dong, service codes, dates, statuses and flags."
        ),
        "key": "case_id",
        "key_description": (
            "carelink's `case_id` (UTF-8): one case stays in order on one partition."
        ),
        "partitions": topics.CASES_PARTITIONS,
        "readers": None,  # every service that writes it also reads it
    },
    topics.ESCALATIONS: {
        "title": "Escalations for operators and coordinators",
        "description": (
            "Raised once per coordinator task that passes its deadline, by the service that "
            "owns the task (referral or scheduling, through `services/lib/tasks`). Never sent to "
            "hospitals. No personal data."
        ),
        "key": "case_id",
        "key_description": "carelink's `case_id` (UTF-8).",
        "partitions": topics.ESCALATIONS_PARTITIONS,
        "readers": ["operators"],
    },
}

_HOSPITAL_ID_PARAMETER = {
    "description": f"The hospital's registered slug, pattern `{HOSPITAL_ID_PATTERN}`.",
    "examples": ["police-hospital"],
}


def _version() -> str:
    version = getattr(contracts, "__version__", None)
    return version if isinstance(version, str) else "1.0.0"


def schema_path(ce_type: str) -> str:
    return f"{SCHEMA_DIR}/{ce_type}.json"


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def _dump_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """Never emits anchors and aliases, so every object reads on its own."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _dump_yaml(value: Any) -> str:
    return yaml.dump(
        value,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def _channel_id(address: str) -> str:
    """`hospital.{hospital_id}.referrals` -> `hospitalReferrals`, `care.cases` -> `careCases`."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", re.sub(r"\{[^}]*\}", "", address)) if w]
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _operation_id(actor: str, action: str, channel_id: str) -> str:
    return f"{actor}{action.capitalize()}{channel_id[:1].upper()}{channel_id[1:]}"


def _summary(model: type[BaseModel]) -> str | None:
    doc = model.__doc__
    if not doc:
        return None
    first = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ")
    # Docstrings of the hospital contract start with "`<ce_type>`: ", which `name` already says.
    first = re.sub(r"^`[^`]+`:\s*", "", first)
    return first[:1].upper() + first[1:]


def _headers_schema(message: Message) -> dict[str, Any]:
    on_hospital_topic = message.channel not in (topics.CASES, topics.ESCALATIONS)
    subject = (
        "The referral id." if on_hospital_topic else "What the event is about, usually the case id."
    )
    return {
        "type": "object",
        "description": (
            "CloudEvents 1.0 in Kafka binary mode: the attributes travel as Kafka headers "
            "(UTF-8 strings) and the record value is the JSON `data`."
        ),
        "properties": {
            "ce_specversion": {"type": "string", "const": SPEC_VERSION},
            "ce_id": {
                "type": "string",
                "minLength": 1,
                "description": "Unique per event (a UUID is fine); a redelivered record keeps it.",
            },
            "ce_source": {
                "type": "string",
                "minLength": 1,
                "description": "Who produced the event.",
            },
            "ce_type": {"type": "string", "const": message.ce_type},
            "ce_time": {
                "type": "string",
                "format": "date-time",
                "description": "RFC 3339 timestamp with a UTC offset.",
            },
            "content-type": {
                "type": "string",
                "pattern": r"^application/json\s*(;.*)?$",
                "examples": [CONTENT_TYPE],
                "description": f"`{CONTENT_TYPE}`.",
            },
            "ce_subject": {"type": "string", "description": f"Optional. {subject}"},
            "traceparent": {
                "type": "string",
                "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "description": "Optional W3C Trace Context header.",
            },
        },
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"],
        "additionalProperties": {
            "type": "string",
            "description": "Further `ce_<name>` headers are CloudEvents extension attributes.",
        },
    }


def _message(message: Message) -> dict[str, Any]:
    info = _CHANNEL_INFO[message.channel]
    body: dict[str, Any] = {
        "name": message.ce_type,
        "title": message.model.__name__,
    }
    summary = _summary(message.model)
    if summary:
        body["summary"] = summary
    body["contentType"] = CONTENT_TYPE
    body["headers"] = _headers_schema(message)
    body["payload"] = {"$ref": f"./schemas/{message.ce_type}.json"}
    body["tags"] = [{"name": f"producer:{message.producer}"}]
    body["bindings"] = {
        "kafka": {
            "key": {
                "type": "string",
                "minLength": 1,
                "description": info["key_description"],
            },
            "bindingVersion": KAFKA_BINDING_VERSION,
        }
    }
    return body


def asyncapi(messages: Sequence[Message]) -> dict[str, Any]:
    by_channel: dict[str, list[Message]] = {}
    for message in messages:
        if message.channel not in _CHANNEL_INFO:
            raise ValueError(f"no channel description for {message.channel!r} ({message.ce_type})")
        by_channel.setdefault(message.channel, []).append(message)

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for address, channel_messages in by_channel.items():
        info = _CHANNEL_INFO[address]
        channel_id = _channel_id(address)
        channel: dict[str, Any] = {
            "address": address,
            "title": info["title"],
            "description": info["description"],
            "messages": {
                m.ce_type: {"$ref": f"#/components/messages/{m.ce_type}"} for m in channel_messages
            },
        }
        if "{hospital_id}" in address:
            channel["parameters"] = {"hospital_id": dict(_HOSPITAL_ID_PARAMETER)}
        kafka_topic: dict[str, Any] = {"partitions": info["partitions"]}
        if "{" not in address:
            kafka_topic = {"topic": address, **kafka_topic}
        channel["bindings"] = {"kafka": {**kafka_topic, "bindingVersion": KAFKA_BINDING_VERSION}}
        channels[channel_id] = channel

        def refs(selected: Sequence[Message], channel_id: str = channel_id) -> list[dict[str, str]]:
            return [{"$ref": f"#/channels/{channel_id}/messages/{m.ce_type}"} for m in selected]

        writers = sorted({m.producer for m in channel_messages})
        readers: list[str] = info["readers"] if info["readers"] is not None else writers
        for actor in writers:
            sent = [m for m in channel_messages if m.producer == actor]
            operations[_operation_id(actor, "send", channel_id)] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{_actor_name(actor)} writes to {address}.",
                "messages": refs(sent),
            }
        for actor in readers:
            operations[_operation_id(actor, "receive", channel_id)] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "summary": f"{_actor_name(actor)} reads {address}.",
                "messages": refs(channel_messages),
            }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "carelink",
            "version": _version(),
            "description": (
                "Event-driven case referral between hospitals and district Care SOS centres. "
                "Every record is a CloudEvents 1.0 event in Kafka binary mode. Generated by "
                "`python -m contracts.docs` from the models in `contracts/`; do not edit by hand."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": (
                    "A local development broker (Apache Kafka, or the Tansu broker when no "
                    "Docker engine is available)."
                ),
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": {m.ce_type: _message(m) for m in messages}},
    }


def _actor_name(actor: str) -> str:
    return "The hospital" if actor == HOSPITAL_ACTOR else f"carelink's {actor} service"


def render() -> dict[str, str]:
    """Every generated file's content by its path relative to the repository root."""
    messages = all_messages()
    seen: set[str] = set()
    files: dict[str, str] = {}
    for message in messages:
        if message.ce_type in seen:
            raise ValueError(f"ce_type appears twice in the catalog: {message.ce_type}")
        seen.add(message.ce_type)
        files[schema_path(message.ce_type)] = _dump_json(json_schema(message.model))
    files[ASYNCAPI_PATH] = _dump_yaml(asyncapi(messages))
    return dict(sorted(files.items()))


def stale_files(root: Path, rendered: dict[str, str]) -> list[str]:
    """Schema files on disk that no message generates any more."""
    directory = root / SCHEMA_DIR
    if not directory.is_dir():
        return []
    on_disk = (p.relative_to(root).as_posix() for p in directory.glob("*.json"))
    return sorted(p for p in on_disk if p not in rendered)


def check(root: Path = REPO_ROOT) -> list[str]:
    """Paths whose committed content differs from what the code generates."""
    rendered = render()
    drifted = [
        path
        for path, content in rendered.items()
        if not (root / path).is_file() or (root / path).read_bytes() != content.encode()
    ]
    return sorted(drifted + stale_files(root, rendered))


def write(root: Path = REPO_ROOT) -> list[str]:
    """Write every generated file, delete stale schemas; return the paths that changed."""
    rendered = render()
    changed: list[str] = []
    for path, content in rendered.items():
        target = root / path
        data = content.encode()
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        changed.append(path)
    for path in stale_files(root, rendered):
        (root / path).unlink()
        changed.append(path)
    return sorted(changed)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m contracts.docs",
        description="Generate contracts/schemas/*.json and contracts/asyncapi.yaml.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the committed files differ from the code",
    )
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    args = parser.parse_args(argv)
    if args.check:
        drifted = check(args.root)
        if drifted:
            print("contract documents are out of date:", file=sys.stderr)
            for path in drifted:
                print(f"  {path}", file=sys.stderr)
            print(
                "run `make docs` (python -m contracts.docs) and commit the result", file=sys.stderr
            )
            return 1
        print("contract documents are up to date")
        return 0
    changed = write(args.root)
    for path in changed:
        print(f"wrote {path}" if (args.root / path).exists() else f"deleted {path}")
    if not changed:
        print("contract documents are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
