"""The HTTP protocol the API is served with: request heads bounded in size, requests bounded
in the time they take to arrive; everything else as uvicorn's httptools protocol does it.
Against a real uvicorn server on a free port, over raw sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from api.__main__ import AdminServer
from api.http_protocol import bounded_protocol
from harness.ports import free_port

MAX_HEAD = 1024
TIMEOUT = 0.5


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with the length of the body it read."""
    assert scope["type"] == "http"
    size, more = 0, True
    while more:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    config = uvicorn.Config(
        echo_length,
        host="127.0.0.1",
        port=free_port(),
        lifespan="off",
        http=bounded_protocol(max_head_bytes=MAX_HEAD, read_timeout_seconds=TIMEOUT),
        timeout_keep_alive=5,
        log_config=None,
    )
    server = AdminServer(config)  # leaves the signals to pytest
    serving = asyncio.create_task(server.serve())
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    yield config.port
    server.should_exit = True
    await serving


def request(body: bytes = b"", *, extra: int = 0) -> bytes:
    head = (
        b"PUT /x HTTP/1.1\r\nHost: test\r\n"
        + (b"X-Padding: " + b"a" * extra + b"\r\n" if extra else b"")
        + b"Content-Length: %d\r\n\r\n" % len(body)
    )
    return head + body


async def answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one response (Content-Length framed)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(
        next(
            line.split(b":", 1)[1]
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
    )
    return status, await reader.readexactly(length)


async def test_requests_within_the_bounds_are_served_on_a_kept_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # A body far larger than the head bound, sent with its head in one write.
    writer.write(request(b"x" * (8 * MAX_HEAD), extra=MAX_HEAD // 2))
    assert await answer(reader) == (200, str(8 * MAX_HEAD).encode())
    # Two pipelined in one write, then one more: the same connection.
    writer.write(request(b"ab") + request(b"abc"))
    assert await answer(reader) == (200, b"2")
    assert await answer(reader) == (200, b"3")
    await asyncio.sleep(TIMEOUT / 2)  # idle a while
    writer.write(request(b""))
    assert await answer(reader) == (200, b"0")
    # Idle past the bound: the next request had to come within it of the last answer.
    assert await asyncio.wait_for(reader.read(), timeout=TIMEOUT + 1.0) == b""
    writer.close()


@pytest.mark.parametrize("piece", [None, 100], ids=["one write", "100 bytes a write"])
async def test_a_head_beyond_the_bound_is_answered_431_and_closed(
    port: int, piece: int | None
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = request(b"{}", extra=2 * MAX_HEAD)
    step = piece or len(data)
    # Up to the first write past the bound (writing on to a closed socket would reset it).
    for start in range(0, MAX_HEAD + 1, step):
        writer.write(data[start : start + step])
        await writer.drain()
        await asyncio.sleep(0.01)
    response = await reader.read()  # up to the server's close
    assert response.startswith(b"HTTP/1.1 431 ")
    assert b"connection: close" in response
    writer.close()


async def test_a_request_that_dribbles_in_is_cut_off(port: int) -> None:
    # Before connecting: the server's deadline starts when it accepts the connection, which
    # may be a moment before the client sees it open.
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def dribble() -> None:
        # A byte every tenth of the bound: each one arrives in time, the request does not.
        for byte in request(b""):
            writer.write(bytes([byte]))
            await asyncio.sleep(TIMEOUT / 10)

    dribbling = asyncio.create_task(dribble())
    try:
        assert await asyncio.wait_for(reader.read(), timeout=TIMEOUT + 1.0) == b""
        assert time.monotonic() - started >= TIMEOUT
    finally:
        dribbling.cancel()
        writer.close()


async def test_a_body_that_does_not_come_is_cut_off(port: int) -> None:
    started = time.monotonic()  # before connecting, as above
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request(b"0123456789")[:-5])  # the head, half the body
    assert await asyncio.wait_for(reader.read(), timeout=TIMEOUT + 1.0) == b""
    assert time.monotonic() - started >= TIMEOUT
    writer.close()


async def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    started = time.monotonic()  # before connecting, as above
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), timeout=TIMEOUT + 1.0) == b""
    assert time.monotonic() - started >= TIMEOUT
    writer.close()
