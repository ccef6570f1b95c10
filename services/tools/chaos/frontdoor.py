"""A front door for each service the console calls: what a load balancer (a
Kubernetes Service) is in production, for a local system under faults.

The console is given one address per service. With two instances of a service,
the one at that address may be the one a scenario kills; in production the
console would then reach the other through the Service in front of both. Here a
TCP forwarder listens on its own port per service and sends each new connection
to the first instance that accepts it (the system's own first, then the extra
ones), so the console, and the simulated coordinators behind it, keep working
while any instance lives. A connection to an instance that dies breaks, as it
would behind a real balancer; the console's retries and the coordinators' take it
from there.

It runs on its own thread and event loop, so it can be up before the system starts
(the console checks the services' readiness as it starts) and outlive the
scenario's own loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable, Mapping

# Ports of the live instances of a service, in the order to try them.
Backends = Callable[[], list[int]]


class FrontDoor:
    def __init__(self, services: list[str]) -> None:
        self.ports = {service: _free_port() for service in services}
        self._backends: dict[str, Backends] = {}
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._servers: list[asyncio.Server] = []
        self.connections = 0
        self.refused = 0

    def urls(self) -> dict[str, str]:
        return {service: f"http://127.0.0.1:{port}" for service, port in self.ports.items()}

    def console_env(self) -> dict[str, str]:
        """The console's settings pointing at the doors instead of at first instances."""
        return {f"CARELINK_CONSOLE_{s.upper()}_URL": url for s, url in self.urls().items()}

    def start(self, backends: Mapping[str, Backends]) -> None:
        self._backends = dict(backends)
        self._thread = threading.Thread(target=self._loop.run_forever, name="front door")
        self._thread.daemon = True
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
        self._loop.close()

    async def _listen(self) -> None:
        for service, port in self.ports.items():
            server = await asyncio.start_server(self._door(service), "127.0.0.1", port)
            self._servers.append(server)

    def _door(
        self, service: str
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._forward(service, reader, writer)

        return forward

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.cancel()

    async def _forward(
        self, service: str, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        upstream = None
        for port in self._backends[service]():
            with contextlib.suppress(OSError):
                upstream = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
                break
        if upstream is None:
            self.refused += 1
            client_w.close()
            return
        self.connections += 1
        server_r, server_w = upstream
        await asyncio.gather(
            _pipe(client_r, server_w), _pipe(server_r, client_w), return_exceptions=True
        )


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
