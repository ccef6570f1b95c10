"""`python -m services.console`: the console on CARELINK_CONSOLE_HOST:PORT (127.0.0.1:8180)."""

from __future__ import annotations

import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from services.console import metrics
from services.console.app import create_app
from services.console.auth import (
    DEFAULT_SECRET_KEYS,
    DEMO_PASSWORDS,
    UsersFileError,
    load_users,
)
from services.console.settings import ConsoleSettings
from services.lib.runtime.logging import configure_logging
from services.lib.signin import (
    ENV_VAR,
    is_local_run,
    refuse_unsafe_start,
    unsafe_start_problems,
)


class _Server(uvicorn.Server):
    """Ends the open event streams first, so a shutdown does not wait on them."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        request_stop = getattr(self._app.state, "request_stop", None)
        if request_stop is not None:
            request_stop()
        super().handle_exit(sig, frame)


def refuse_unsafe(settings: ConsoleSettings) -> None:
    """Outside a local run (CARELINK_ENV=local), exit 2 on the published signing key or
    demo accounts, or a users file that does not load."""
    if is_local_run({ENV_VAR: settings.environment}):
        return
    try:
        users = load_users(settings.users_file)
    except UsersFileError as exc:
        refuse_unsafe_start("console", [str(exc)])
        return
    key = settings.secret_key.get_secret_value() if settings.secret_key else None
    refuse_unsafe_start(
        "console",
        unsafe_start_problems(
            secret_key=key,
            default_keys=DEFAULT_SECRET_KEYS,
            password_hashes=users.password_hashes(),
            demo_passwords=DEMO_PASSWORDS,
            key_setting="CARELINK_CONSOLE_SECRET_KEY",
            users_setting=f"the users file {settings.users_file} (CARELINK_CONSOLE_USERS_FILE)",
        ),
    )


def main() -> int:
    settings = ConsoleSettings()
    refuse_unsafe(settings)
    configure_logging(
        service="console",
        level=settings.log_level,
        fmt=settings.log_format,
        log_file=settings.log_file,
    )
    app = create_app(settings)
    metrics.serve(settings.metrics_host, settings.metrics_port)
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            lifespan="on",
            # Believed only from the proxies named (the sign-in throttle counts per address).
            proxy_headers=settings.forwarded_allow_ips is not None,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            server_header=False,
            timeout_graceful_shutdown=5,
        ),
        app,
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
