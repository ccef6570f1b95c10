"""`python -m services.console`: the console on CARELINK_CONSOLE_HOST:PORT (127.0.0.1:8180)."""

from __future__ import annotations

import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI

from services.console import metrics
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.lib.runtime.logging import configure_logging


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


def main() -> int:
    settings = ConsoleSettings()
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
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        ),
        app,
    )
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
