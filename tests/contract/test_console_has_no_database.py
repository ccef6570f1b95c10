"""The console is a gateway: no database of any service, no service's code.

It reaches referral, scheduling and intake over their HTTP APIs only, so it
cannot read or write their tables; these checks need no server.
"""

from __future__ import annotations

import pytest

from services.console.settings import ConsoleSettings
from services.tools.stack.deployables import SERVICES
from tests.imports import import_closure, imports_of, module_file


def test_the_console_settings_hold_no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    names = set(ConsoleSettings.model_fields)
    assert not [n for n in names if "database" in n or n.startswith("db_") or "dsn" in n], names
    # Not under another name either: no default points at PostgreSQL.
    for name, field in ConsoleSettings.model_fields.items():
        assert "postgres" not in str(field.default), name
    # The services' old variables are not read any more (a stale deployment is ignored).
    monkeypatch.setenv("CARELINK_CONSOLE_REFERRAL_DATABASE_URL", "postgresql://x@db/referral")
    monkeypatch.setenv("CARELINK_DATABASE_URL", "postgresql://x@db/referral")
    assert "postgres" not in ConsoleSettings().model_dump_json()
    # What it has instead: where the services' APIs are, and its credential for them.
    assert {"intake_url", "referral_url", "scheduling_url", "api_token"} <= names
    # The lease length and the contact-attempt limit are the services' own settings.
    assert not names & {"lease_minutes", "max_contact_attempts", "policy_dir"}


def test_the_console_imports_no_service_and_no_database_driver_itself() -> None:
    closure = import_closure(["services.console.__main__"])
    deployables = sorted(
        module
        for module in closure.local
        for service in SERVICES
        if module == f"services.{service}" or module.startswith(f"services.{service}.")
    )
    assert not deployables, f"the console imports a service's code: {deployables}"
    assert "httpx" in closure.third_party, "the import walk is broken"
    # Its own code never touches a database driver (a shared library may know asyncpg's
    # error types, to classify failures; that opens no connection).
    drivers = sorted(
        module
        for module in closure.local
        if module.startswith("services.console")
        and (path := module_file(module)) is not None
        and any(name.split(".")[0] in {"asyncpg", "psycopg"} for name in imports_of(module, path))
    )
    assert not drivers, f"console modules import a database driver: {drivers}"
