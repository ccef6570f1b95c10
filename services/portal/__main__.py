"""`python -m services.portal`: the social workers' portal on CARELINK_HEALTH_HOST:PORT
(127.0.0.1:8190 by default).

Before anything connects, the configuration is checked: a users file that does not
load, a user of a hospital the portal does not serve, a served hospital the registry
does not know, or (outside a local run, CARELINK_ENV=local) a missing secret key or
a demo account with its published password, each stops the portal with exit code 2.
"""

from __future__ import annotations

import sys

from services.lib.policy import PolicyError, load_registry
from services.lib.runtime.service import main
from services.lib.signin import (
    EXIT_CONFIGURATION,
    is_local_run,
    refuse_unsafe_start,
    unsafe_start_problems,
)
from services.portal.app import build_spec
from services.portal.settings import PortalSettings
from services.portal.users import DEMO_PASSWORDS, UsersFileError, check_hospitals, load_users


def _refuse(problems: list[str]) -> None:
    print("carelink portal: configuration error, not starting:", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    sys.exit(EXIT_CONFIGURATION)


def run() -> None:
    settings = PortalSettings()
    try:
        users = load_users(settings.portal_users_file)
        registry = load_registry(settings.registry_file)
    except (UsersFileError, PolicyError) as exc:
        _refuse([str(exc)])
        return
    served = settings.served_hospitals(users.hospitals)
    if not served:
        _refuse(["no hospital to serve: set CARELINK_PORTAL_HOSPITALS or add users"])
    problems = check_hospitals(users, served, set(registry.hospital_ids))
    if problems:
        _refuse(problems)
    if not is_local_run():
        key = settings.portal_secret_key
        refuse_unsafe_start(
            "portal",
            unsafe_start_problems(
                secret_key=key.get_secret_value() if key else None,
                default_keys=(),
                password_hashes=users.hashes,
                demo_passwords=DEMO_PASSWORDS,
                key_setting="CARELINK_PORTAL_SECRET_KEY",
                users_setting="CARELINK_PORTAL_USERS_FILE",
            ),
        )
    main(build_spec(settings, users, served))


run()
