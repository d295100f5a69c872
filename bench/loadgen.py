"""``python -m bench.loadgen``: an open-loop load generator in a process of its own, sending
``PUT /v1/mfa/challenges/signatures/{id}`` at a fixed arrival rate and writing each request's
latency from its intended send time. Why open loop, and why hand-written: docs/benchmarks.md.

    python -m bench.loadgen --url http://127.0.0.1:8000 --tickets t.jsonl \\
        --token-file token.txt --rate 200 --duration 10 --out step.json
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.seed import Ticket, read_tickets
from bench.stats import requests_in, schedule, step_stats

_HEAD_LIMIT = 64 * 1024

TIMED_OUT = 0
CONNECTION_FAILED = -1


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    # When it was last released (loop time): servers close keep-alive connections idle
    # for a while (uvicorn after 5 s), and one closed just as a request is written fails.
    idle_since: float = 0.0
    reused: bool = False


class StaleConnection(Exception):
    """A reused connection was closed by the server before it answered anything."""


class Pool:
    """Keep-alive connections to one host; at most ``limit`` open at once. Connections idle
    for ``max_idle`` seconds are closed rather than reused, before the server (uvicorn's
    keep-alive timeout is 5 s) closes them under a request."""

    def __init__(self, host: str, port: int, limit: int, *, max_idle: float = 3.0) -> None:
        self._host = host
        self._port = port
        self._max_idle = max_idle
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(limit)
        self.opened = 0

    async def _open(self) -> Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=_HEAD_LIMIT)
        self.opened += 1
        return Connection(reader, writer, idle_since=asyncio.get_running_loop().time())

    async def prewarm(self, count: int) -> None:
        """Open ``count`` connections before the clock starts: the first requests of a step
        would otherwise all pay a TCP handshake that later ones do not. Best effort: a
        server that refuses them will refuse the requests too, and those are counted."""
        opened = await asyncio.gather(*(self._open() for _ in range(count)), return_exceptions=True)
        self._idle.extend(item for item in opened if isinstance(item, Connection))

    async def acquire(self, *, fresh: bool = False) -> Connection:
        await self._slots.acquire()
        try:
            now = asyncio.get_running_loop().time()
            while self._idle and not fresh:
                connection = self._idle.pop()
                if now - connection.idle_since <= self._max_idle:
                    connection.reused = True
                    return connection
                connection.writer.close()
            return await self._open()
        except BaseException:
            self._slots.release()
            raise

    def release(self, connection: Connection, *, reusable: bool) -> None:
        if reusable:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.append(connection)
        else:
            connection.writer.close()
        self._slots.release()

    def close(self) -> None:
        for connection in self._idle:
            connection.writer.close()
        self._idle.clear()


def build_request(host: str, port: int, token: str, ticket: Ticket) -> bytes:
    body = ticket.body()
    head = (
        f"PUT {ticket.path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode() + body


def parse_head(head: bytes) -> tuple[int, int | None, bool, bool]:
    """Status, Content-Length, chunked?, keep-alive? of a response head (through CRLFCRLF)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ValueError("not an HTTP/1.x status line")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    keep_alive = parts[0] == b"HTTP/1.1"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            keep_alive = value != b"close"
    return status, length, chunked, keep_alive


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            # Trailer fields, if any, up to the empty line that ends the message.
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)


async def exchange(connection: Connection, request: bytes) -> tuple[int, bool]:
    """Send one request, read its whole response; (status, connection reusable).

    Raises :class:`StaleConnection` when a reused connection ends before the first byte
    of an answer: the server closed it idle and never read the request, which is then
    sent again on a new connection, as HTTP clients do (and PUT is safe to retry).
    """
    try:
        connection.writer.write(request)
        await connection.writer.drain()
        head = await connection.reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError) as error:
        partial = getattr(error, "partial", b"")
        if connection.reused and not partial:
            raise StaleConnection() from error
        raise
    status, length, chunked, keep_alive = parse_head(head)
    if chunked:
        await _read_chunked(connection.reader)
    elif length:
        await connection.reader.readexactly(length)
    elif length is None and status not in (204, 304) and status >= 200:
        # No length and not chunked: the body runs to the end of the connection.
        await connection.reader.read()
        keep_alive = False
    return status, keep_alive


@dataclass
class Samples:
    intended_s: list[float]
    latency_ms: list[float]
    send_lag_ms: list[float]
    status: list[int]
    wall_s: float
    connections_opened: int


async def run_step(
    *,
    url: str,
    token: str,
    tickets: list[Ticket],
    rate: float,
    duration: float,
    request_timeout: float,
    max_connections: int,
) -> Samples:
    """Offer ``rate`` requests/s for ``duration`` s, one ticket each; every sample."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    offsets = schedule(rate, duration)
    if len(tickets) < len(offsets):
        raise ValueError(f"{len(offsets)} requests need as many tickets, got {len(tickets)}")
    requests = [build_request(host, port, token, ticket) for ticket in tickets[: len(offsets)]]
    count = len(offsets)
    latency = [math.nan] * count
    lag = [math.nan] * count
    status = [CONNECTION_FAILED] * count
    pool = Pool(host, port, max_connections)
    # Enough connections for the expected concurrency at a modest latency; more on demand.
    await pool.prewarm(min(max_connections, 8 + math.ceil(rate * 0.05)))
    loop = asyncio.get_running_loop()
    finished = [0.0]

    async def one(index: int, due: float) -> None:
        lag[index] = (loop.time() - due) * 1000
        connection: Connection | None = None
        answer = CONNECTION_FAILED
        try:
            async with asyncio.timeout(request_timeout):
                connection = await pool.acquire()
                try:
                    answer, reusable = await exchange(connection, requests[index])
                except StaleConnection:
                    pool.release(connection, reusable=False)
                    connection = None
                    connection = await pool.acquire(fresh=True)
                    answer, reusable = await exchange(connection, requests[index])
            pool.release(connection, reusable=reusable)
            connection = None
        except TimeoutError:
            answer = TIMED_OUT
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            answer = CONNECTION_FAILED
        finally:
            if connection is not None:
                pool.release(connection, reusable=False)
        now = loop.time()
        latency[index] = (now - due) * 1000
        status[index] = answer
        finished[0] = max(finished[0], now)

    # The collector would pause the loop at random moments: those pauses are the
    # generator's, not the system's. The step allocates little; collect afterwards.
    gc.collect()
    gc.disable()
    tasks: list[asyncio.Task[None]] = []
    start = loop.time() + 0.05
    try:
        for index, offset in enumerate(offsets):
            due = start + offset
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, due)))
        await asyncio.gather(*tasks)
    finally:
        gc.enable()
        pool.close()
    return Samples(
        intended_s=offsets,
        latency_ms=latency,
        send_lag_ms=lag,
        status=status,
        wall_s=finished[0] - start,
        connections_opened=pool.opened,
    )


def samples_json(samples: Samples, *, rate: float, duration: float, system: str) -> dict[str, Any]:
    return {
        "system": system,
        "rate": rate,
        "duration_s": duration,
        "wall_s": samples.wall_s,
        "connections_opened": samples.connections_opened,
        "intended_s": samples.intended_s,
        "latency_ms": samples.latency_ms,
        "send_lag_ms": samples.send_lag_ms,
        "status": samples.status,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="base URL of the system under test")
    parser.add_argument("--tickets", type=Path, required=True, help="JSON lines of tickets")
    parser.add_argument("--skip", type=int, default=0, help="tickets used by earlier steps")
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument("--system", default="system", help="label in the output")
    parser.add_argument("--out", type=Path, help="write every sample here (JSON)")
    args = parser.parse_args(argv)

    count = requests_in(args.rate, args.duration)
    tickets = read_tickets(args.tickets)[args.skip : args.skip + count]
    token = args.token_file.read_text().strip()
    samples = asyncio.run(
        run_step(
            url=args.url,
            token=token,
            tickets=tickets,
            rate=args.rate,
            duration=args.duration,
            request_timeout=args.timeout,
            max_connections=args.max_connections,
        )
    )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                samples_json(samples, rate=args.rate, duration=args.duration, system=args.system)
            )
        )
    stats = step_stats(
        system=args.system,
        rate=args.rate,
        duration_s=args.duration,
        latencies_ms=samples.latency_ms,
        statuses=samples.status,
        send_lags_ms=samples.send_lag_ms,
        wall_s=samples.wall_s,
    )
    print(
        f"{args.system} {args.rate:g}/s x {args.duration:g}s: {stats.requests} sent,"
        f" {stats.errors} errors {stats.error_statuses or ''}, p50 {stats.p50_ms:.1f}"
        f" p99 {stats.p99_ms:.1f} p99.9 {stats.p999_ms:.1f} max {stats.max_ms:.1f} ms,"
        f" send lag p99 {stats.send_lag_p99_ms:.1f} ms",
        file=sys.stderr,
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
