"""The portal's OpenAPI document, built without any server: the API only (pages are
not API), and every error documented as the error object the API answers with."""

from __future__ import annotations

from services.portal.app import create_app


def test_the_document_holds_the_api_and_every_error_is_an_error_object() -> None:
    document = create_app().openapi()
    paths = document["paths"]
    assert set(paths) == {
        "/api/health",
        "/api/session",
        "/api/referrals",
        "/api/referrals/{referral_id}",
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorOut"}, (method, path)
    detail = paths["/api/referrals/{referral_id}"]["get"]["responses"]
    assert {"401", "404"} <= set(detail)
