"""The committed JSON Schemas and AsyncAPI document match the contract models.

When this fails, run `make docs` (python -m contracts.docs) and commit the result,
so that every contract change is visible in review.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts import docs
from contracts.catalog import all_messages

REPO_ROOT = Path(__file__).resolve().parents[2]
HINT = "run `make docs` (python -m contracts.docs) and commit the result"


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return docs.render()


@pytest.fixture(scope="module")
def asyncapi(rendered: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(rendered[docs.ASYNCAPI_PATH])
    return document


def test_committed_files_match_the_generated_ones(rendered: dict[str, str]) -> None:
    drifted = [
        path
        for path, content in rendered.items()
        if not (REPO_ROOT / path).is_file()
        or (REPO_ROOT / path).read_text(encoding="utf-8") != content
    ]
    assert drifted == [], f"out of date: {drifted}; {HINT}"


def test_no_stale_schema_files_are_committed(rendered: dict[str, str]) -> None:
    on_disk = {
        p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / docs.SCHEMA_DIR).glob("*.json")
    }
    stale = sorted(on_disk - rendered.keys())
    assert stale == [], f"no message generates {stale}; {HINT}"


def test_render_is_deterministic(rendered: dict[str, str]) -> None:
    assert docs.render() == rendered


def test_every_catalog_message_has_a_schema_file(rendered: dict[str, str]) -> None:
    for message in all_messages():
        schema = json.loads(rendered[docs.schema_path(message.ce_type)])
        assert schema["title"] == message.model.__name__


def test_asyncapi_has_a_channel_and_message_for_every_catalog_entry(
    asyncapi: dict[str, Any],
) -> None:
    channels_by_address = {c["address"]: (cid, c) for cid, c in asyncapi["channels"].items()}
    components = asyncapi["components"]["messages"]
    for message in all_messages():
        assert message.channel in channels_by_address, message.channel
        channel_id, channel = channels_by_address[message.channel]
        assert channel["messages"][message.ce_type] == {
            "$ref": f"#/components/messages/{message.ce_type}"
        }
        component = components[message.ce_type]
        assert component["payload"] == {"$ref": f"./schemas/{message.ce_type}.json"}
        assert component["headers"]["properties"]["ce_type"]["const"] == message.ce_type
        sent_by_producer = [
            op
            for op in asyncapi["operations"].values()
            if op["action"] == "send"
            and op["channel"] == {"$ref": f"#/channels/{channel_id}"}
            and {"$ref": f"#/channels/{channel_id}/messages/{message.ce_type}"} in op["messages"]
        ]
        assert len(sent_by_producer) == 1, message.ce_type


def test_asyncapi_has_no_message_outside_the_catalog(asyncapi: dict[str, Any]) -> None:
    catalog = {m.ce_type for m in all_messages()}
    assert set(asyncapi["components"]["messages"]) == catalog
    in_channels = {ce_type for c in asyncapi["channels"].values() for ce_type in c["messages"]}
    assert in_channels == catalog


def test_asyncapi_references_resolve(asyncapi: dict[str, Any]) -> None:
    def resolve(pointer: str) -> Any:
        node: Any = asyncapi
        for part in pointer.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    for ref in refs(asyncapi):
        if ref.startswith("#/"):
            assert resolve(ref) is not None, ref
        else:
            assert (REPO_ROOT / "contracts" / ref).is_file(), ref


def test_hospital_channels_declare_the_hospital_id_parameter(asyncapi: dict[str, Any]) -> None:
    for channel in asyncapi["channels"].values():
        if "{hospital_id}" in channel["address"]:
            assert "hospital_id" in channel["parameters"]


def test_kafka_key_is_referral_id_on_hospital_topics_and_case_id_on_cases(
    asyncapi: dict[str, Any],
) -> None:
    components = asyncapi["components"]["messages"]
    for message in all_messages():
        key = components[message.ce_type]["bindings"]["kafka"]["key"]
        expected = (
            "case_id" if message.channel in ("care.cases", "care.escalations") else "referral_id"
        )
        assert f"`{expected}`" in key["description"], message.ce_type


def test_write_reports_changes_and_deletes_stale_schemas(tmp_path: Path) -> None:
    first = docs.write(tmp_path)
    assert sorted(first) == sorted(docs.render())
    stale = tmp_path / docs.SCHEMA_DIR / "carelink.case.gone.v1.json"
    stale.write_text("{}\n", encoding="utf-8")
    (tmp_path / docs.ASYNCAPI_PATH).write_text("edited\n", encoding="utf-8")

    assert docs.check(tmp_path) == sorted(
        [docs.ASYNCAPI_PATH, f"{docs.SCHEMA_DIR}/carelink.case.gone.v1.json"]
    )
    second = docs.write(tmp_path)

    assert second == sorted([docs.ASYNCAPI_PATH, f"{docs.SCHEMA_DIR}/carelink.case.gone.v1.json"])
    assert not stale.exists()
    assert docs.write(tmp_path) == []
    assert docs.check(tmp_path) == []


def test_check_cli_exits_1_and_names_drifted_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert docs.ASYNCAPI_PATH in err
    assert "make docs" in err
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert docs.main(["--check", "--root", str(tmp_path)]) == 0
