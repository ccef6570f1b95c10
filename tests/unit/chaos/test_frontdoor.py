"""The chaos front door sends each connection to the first live instance, as a load
balancer in front of two instances would (loopback sockets only, no product server)."""

from __future__ import annotations

import asyncio

from services.tools.chaos.frontdoor import FrontDoor


async def _server(name: bytes) -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.readline()
        writer.write(name + b":" + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _ask(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"hello\n")
    await writer.drain()
    try:
        answer = await reader.read()
    except ConnectionResetError:  # closed with our line unread
        answer = b""
    writer.close()
    return answer


async def test_connections_go_to_the_first_instance_that_lives() -> None:
    first, first_port = await _server(b"first")
    second, second_port = await _server(b"second")
    live = [first_port, second_port]
    door = FrontDoor(["referral"])
    door.start({"referral": lambda: list(live)})
    try:
        port = door.ports["referral"]
        assert door.console_env() == {"CARELINK_CONSOLE_REFERRAL_URL": f"http://127.0.0.1:{port}"}
        assert await _ask(port) == b"first:hello\n"
        first.close()
        await first.wait_closed()  # killed, but still listed as live: the next one answers
        assert await _ask(port) == b"second:hello\n"
        live.clear()
        assert await _ask(port) == b""  # no instance: the connection is closed at once
        assert door.refused == 1
    finally:
        door.stop()
        second.close()
