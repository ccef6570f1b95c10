"""The committed OpenAPI document of the console API matches the code."""

from __future__ import annotations

import json

from services.console.openapi import DOCUMENT, render


def test_committed_openapi_matches_the_code() -> None:
    committed = DOCUMENT.read_text(encoding="utf-8") if DOCUMENT.exists() else ""
    assert committed == render(), (
        "docs/openapi.json is out of date: run `python -m services.console.openapi`"
    )


def test_every_api_route_documents_its_errors_as_error_objects() -> None:
    document = json.loads(render())
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert "/api/queue" in paths
    assert "/api/tasks/{service}/{task_id}/complete" in paths
    assert not any(p.startswith("/tasks") or p == "/" for p in paths), "pages are not API"
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
