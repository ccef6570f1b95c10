"""The console's and the portal's way back after signing in (services.lib.web)."""

from __future__ import annotations

import pytest

from services.lib.web import login_redirect, safe_next


@pytest.mark.parametrize("path", ["/", "/tasks/referral/7", "/cases/c-1?tab=report"])
def test_a_path_on_this_site_is_kept(path: str) -> None:
    assert safe_next(path) == path


@pytest.mark.parametrize(
    "target", [None, "", "https://evil.example/", "//evil.example/x", "/\\evil.example", "tasks"]
)
def test_anything_else_goes_home_never_elsewhere(target: str | None) -> None:
    assert safe_next(target) == "/"


def test_the_sign_in_redirect_carries_where_to_come_back() -> None:
    response = login_redirect("/cases/c-1?tab=report")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fcases%2Fc-1%3Ftab%3Dreport"
