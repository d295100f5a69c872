"""``python -m deploy.bench.inline_peer``: the baseline of the end-to-end benchmark, the API
with the worker's decision taken inside the request, no Kafka.

The same FastAPI routes, authentication, request ids, error answers and middlewares as
``api.app.create_app``, the same ``BindingService`` and store as the worker; only the
gateway differs. Where the real API publishes the command to Kafka and waits for a
worker's reply on the replies topic, :class:`InlineGateway` hands the very same command
object (built by the same route) to ``BindingService.handle`` in-process, with an
:class:`InMemoryOutbox` whose ``reply()`` keeps the reply for the request to answer from
(events and OTPs go nowhere: publishing them is the Kafka work this peer leaves out).
So the ratio of the two systems' sustainable rates is what the architecture (two Kafka
round trips, a separate worker process, acks=all) costs against doing "the same
verification and store update, synchronously" (issue 6).

Configuration from the environment, as the two processes it stands for read it:
``AUTH_JWKS_FILE``, ``AUTH_ISSUER``, ``AUTH_AUDIENCE`` (api.settings), ``DATABASE_URL``,
``AUTO_MIGRATE`` and ``CHALLENGE_TTL_SECONDS`` (worker.settings), ``API_HOST``/``API_PORT``.
Served like ``python -m api``: uvicorn, one process, the same logging.

Both apps get their routes, error answers and middlewares from ``api.app.serve_routes``, so
the comparison stays like for like.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import uvicorn
from fastapi import FastAPI

from api.app import serve_routes
from api.errors import ServiceUnavailable
from api.jwks import KeySet
from api.settings import ServerSettings, Settings
from schemas.commands import Command
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from telemetry.logs import configure_logging
from worker.binding import BindingService
from worker.database import create_engine, prepare_database
from worker.settings import WorkerSettings
from worker.store import Store

logger = logging.getLogger(__name__)

INSTANCE_ID = "inline-peer"


class InMemoryOutbox:
    """The worker's :class:`~worker.binding.Outbox` without Kafka: replies kept for the
    request that waits for them, events and OTPs counted and dropped."""

    def __init__(self) -> None:
        self.replies: dict[UUID, Reply] = {}
        self.events = 0
        self.otps = 0

    async def publish_event(self, key: str, event_json: str) -> None:
        self.events += 1

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        self.otps += 1

    async def reply(self, reply: Reply) -> None:
        self.replies[reply.command_id] = reply


class InlineGateway:
    """The API's :class:`~api.gateway.Gateway`, deciding in-process instead of over Kafka."""

    def __init__(self, service: BindingService, outbox: InMemoryOutbox, retry_after: int) -> None:
        self._service = service
        self._outbox = outbox
        self._retry_after = retry_after

    @property
    def instance_id(self) -> str:
        return INSTANCE_ID

    @property
    def ready(self) -> bool:
        return True

    async def reachable(self) -> bool:
        return True

    async def send(self, command: Command) -> Reply:
        try:
            await self._service.handle(command)
        except Exception:
            # The worker would retry, and the API answer 503 after its wait: the same answer.
            logger.exception("command %s failed", command.command_id)
            raise ServiceUnavailable(self._retry_after) from None
        return self._outbox.replies.pop(command.command_id)


def create_inline_app(settings: Settings, worker_settings: WorkerSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = KeySet(settings)
        await keys.load()
        app.state.keys = keys
        refreshing = asyncio.create_task(keys.refresh_forever(), name="jwks-refresh")
        engine = create_engine(worker_settings.database_url)
        await prepare_database(engine, migrate=worker_settings.auto_migrate)
        outbox = InMemoryOutbox()
        store = Store(engine)
        service = BindingService(
            store,
            outbox,
            challenge_ttl=timedelta(seconds=worker_settings.challenge_ttl_seconds),
        )
        app.state.gateway = InlineGateway(service, outbox, settings.retry_after_seconds)
        try:
            yield
        finally:
            refreshing.cancel()
            await store.close()
            await engine.dispose()

    app = FastAPI(title="Device-binding inline peer (benchmark baseline)", lifespan=lifespan)
    serve_routes(app, settings)
    return app


def main() -> None:
    configure_logging("inline-peer")
    server = ServerSettings()
    uvicorn.run(
        create_inline_app(Settings(), WorkerSettings()),
        host=server.api_host,
        port=server.api_port,
        workers=1,
        lifespan="on",
        server_header=False,
        log_config=None,
    )


if __name__ == "__main__":
    main()
