"""The open-loop generator: its HTTP framing, and that latency counts from the intended send
time (a stall is charged to every request that was due during it)."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.loadgen import CONNECTION_FAILED, build_request, parse_head, run_step
from bench.seed import Ticket

TICKET = Ticket(challenge_id="2f1c6f8e-0000-4000-8000-000000000001", signature="3045ab")


def test_the_request_is_a_complete_http_1_1_put() -> None:
    request = build_request("127.0.0.1", 8000, "tok", TICKET)
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == f"PUT /v1/mfa/challenges/signatures/{TICKET.challenge_id} HTTP/1.1".encode()
    assert b"Authorization: Bearer tok" in lines
    assert f"Content-Length: {len(body)}".encode() in lines
    assert body == b'{"signature": "3045ab"}'


def test_response_heads_are_read_for_status_length_and_keep_alive() -> None:
    assert parse_head(b"HTTP/1.1 204 No Content\r\nx-request-id: a\r\n\r\n") == (
        204,
        None,
        False,
        True,
    )
    assert parse_head(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 12\r\n\r\n") == (
        403,
        12,
        False,
        True,
    )
    assert parse_head(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nConnection: close\r\n\r\n"
    )[2:] == (True, False)
    assert parse_head(b"HTTP/1.0 200 OK\r\n\r\n")[3] is False
    with pytest.raises(ValueError, match="status line"):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


class StallingServer:
    """Answers 204 at once, except that the first request stalls ``stall`` seconds and
    holds every connection's answers meanwhile (a stop-the-world pause)."""

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.requests = 0
        self.released = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                self.requests += 1
                if self.requests == 1:
                    await asyncio.sleep(self.stall)
                    self.released.set()
                await self.released.wait()
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "StallingServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def stalling() -> AsyncIterator[StallingServer]:
    async with StallingServer(stall=0.3) as server:
        yield server


async def test_a_stall_is_charged_from_each_intended_send_time(stalling: StallingServer) -> None:
    rate, duration = 50.0, 0.6  # 30 requests, one every 20 ms
    samples = await run_step(
        url=f"http://127.0.0.1:{stalling.port}",
        token="tok",
        tickets=[TICKET] * 30,
        rate=rate,
        duration=duration,
        request_timeout=5,
        max_connections=100,
    )
    assert samples.status == [204] * 30
    assert samples.intended_s[:3] == [0.0, 0.02, 0.04]
    # The first request waited out the whole stall; the one due 100 ms later waited ~200 ms
    # more, from ITS intended time: a closed-loop client would have sent it only after the
    # stall and timed it as fast.
    assert samples.latency_ms[0] >= 290
    assert 150 <= samples.latency_ms[5] <= samples.latency_ms[0]
    # Requests due after the stall are fast again (bounds loose for a busy test machine).
    assert samples.latency_ms[-1] < 150
    # The generator kept to its schedule throughout (the stall was the server's).
    assert max(samples.send_lag_ms) < 100


async def test_a_refused_connection_is_an_error_not_a_crash() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    samples = await run_step(
        url=f"http://127.0.0.1:{port}",
        token="tok",
        tickets=[TICKET] * 2,
        rate=20,
        duration=0.1,
        request_timeout=1,
        max_connections=4,
    )
    assert samples.status == [CONNECTION_FAILED] * 2


async def test_a_keep_alive_connection_the_server_closed_is_retried_on_a_new_one() -> None:
    """A server that closes every connection after one answer, without saying so (as one
    whose keep-alive timeout expires just then): no request is lost or counted failed."""

    async def one_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(one_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        samples = await run_step(
            url=f"http://127.0.0.1:{port}",
            token="tok",
            tickets=[TICKET] * 10,
            rate=50,
            duration=0.2,
            request_timeout=2,
            max_connections=2,
        )
    finally:
        server.close()
        await server.wait_closed()
    assert samples.status == [204] * 10
