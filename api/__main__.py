"""``python -m api``: one API replica: the API on ``API_HOST``:``API_PORT`` and its probes and
metrics on ``API_HOST``:``API_ADMIN_PORT`` (api/admin.py), two uvicorn servers in one
process and one event loop.

On SIGTERM the API's server stops accepting connections and lets the requests in flight
finish (each waits at most ``REPLY_WAIT_SECONDS`` for its reply) before the lifespan closes
Kafka; the admin server answers the probes until then, and stops last.
"""

import asyncio
import contextlib
import math
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn
import uvloop
from fastapi import FastAPI

from api.admin import create_admin_app
from api.app import create_app
from api.http_protocol import BoundedHttpToolsProtocol
from api.settings import ServerSettings, Settings
from telemetry.logs import configure_logging
from telemetry.tracing import configure_tracing

# Connections (idle keep-alive ones included) and requests one server holds at once; past
# either uvicorn answers a plain 503 without calling the app. The API's own bound on work,
# MAX_IN_FLIGHT, answers first and in the API's error shape; this one caps what idle or slow
# connections can hold (2,048 sockets, a few MiB), above the load generator's 1,000.
CONNECTIONS = 2048
# The admin port serves an orchestrator's probes and a scraper or two.
ADMIN_CONNECTIONS = 64


def _common(server: ServerSettings) -> dict[str, Any]:
    return {
        "host": server.api_host,
        # Request heads of at most 32 KiB, each request read within 10 s
        # (api/http_protocol.py): httptools bounds neither, and uvicorn's
        # h11_max_incomplete_event_size applies only to the h11 parser, not used here.
        "http": BoundedHttpToolsProtocol,
        # Idle keep-alive connections are closed after 5 s: each holds one of CONNECTIONS.
        # Clients' pools (the benchmark's closes its own after 3 s) retire idle connections
        # sooner; a proxy in front must keep its idle timeout below this.
        "timeout_keep_alive": 5,
        "server_header": False,
        "log_config": None,  # our JSON lines (configure_logging), not uvicorn's own format
    }


def api_config(app: FastAPI, server: ServerSettings, settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        port=server.api_port,
        lifespan="on",
        # Above MAX_IN_FLIGHT whatever it is set to, so that the API's own 503 answers first.
        limit_concurrency=max(CONNECTIONS, 2 * settings.max_in_flight),
        # Connections the kernel queues before the loop accepts them: enough for every
        # client of a replica reconnecting at once after a rollout; beyond it a client's
        # SYN waits for its retry instead of a queue here (the kernel caps it at somaxconn).
        backlog=1024,
        # On SIGTERM, after the preStop pause: a request in flight ends within the publish
        # timeout and the reply wait; a connection still sending its request after that is
        # cut, so shutdown ends inside Kubernetes' grace period (30 s).
        timeout_graceful_shutdown=math.ceil(
            settings.publish_timeout_seconds + settings.reply_wait_seconds + 2
        ),
        **_common(server),
    )


def admin_config(admin: FastAPI, server: ServerSettings) -> uvicorn.Config:
    return uvicorn.Config(
        admin,
        port=server.api_admin_port,
        lifespan="off",  # the API's server runs the replica's lifespan
        limit_concurrency=ADMIN_CONNECTIONS,
        backlog=64,
        **_common(server),
    )


class AdminServer(uvicorn.Server):
    """The admin port's server: it leaves SIGTERM and SIGINT to the API's server, whose
    shutdown then stops it (one handler per signal: two servers would replace each other's)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    api: uvicorn.Server,
    api_socket: socket.socket,
    admin: uvicorn.Server,
    admin_socket: socket.socket,
) -> None:
    """The API's server until it stops, with the admin server beside it from the start."""
    admin_serving = asyncio.create_task(admin.serve([admin_socket]), name="admin-server")
    try:
        await api.serve([api_socket])
    finally:
        admin.should_exit = True
        await admin_serving


def main() -> None:
    configure_logging("api")
    configure_tracing("device-binding-api")
    server, settings = ServerSettings(), Settings()
    app = create_app(settings)
    api = uvicorn.Server(api_config(app, server, settings))
    admin = AdminServer(admin_config(create_admin_app(app), server))
    # Both ports bound first: one in use ends the process here (status 3), before Kafka.
    api_socket, admin_socket = api.config.bind_socket(), admin.config.bind_socket()
    # libuv's loop: less time per request than asyncio's (and the C parser, httptools).
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(api, api_socket, admin, admin_socket))


if __name__ == "__main__":
    main()
