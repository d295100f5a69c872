"""``python -m bench.inline_peer``: the baseline of the end-to-end benchmark, the API with
the worker's decisions taken in-process (the same routes, store, decisions and batching), no
Kafka. What it stands for: docs/benchmarks.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import uvicorn
from fastapi import FastAPI

from api.admin import serve_admin_routes
from api.app import serve_routes
from api.errors import ServiceUnavailable
from api.http_protocol import BoundedHttpToolsProtocol
from api.jwks import KeySet
from api.settings import ServerSettings, Settings
from schemas.commands import Command, VerifySignature
from schemas.otp import OtpDelivery
from schemas.replies import Reply
from storage.engine import create_engine
from storage.migrations import prepare_database
from telemetry.logs import configure_logging
from worker.answers import utc_now
from worker.attempts.runs import Attempt, AttemptRuns
from worker.attempts.store import attempt_store
from worker.attempts.verification import BatchVerifier
from worker.binding import BindingService
from worker.migrations import WORKER_MIGRATIONS
from worker.otp_keyring import keyring_from
from worker.outbox import Acknowledgement
from worker.settings import WorkerSettings
from worker.store import Store

logger = logging.getLogger(__name__)

INSTANCE_ID = "inline-peer"


def _acknowledged() -> Acknowledgement:
    done: Acknowledgement = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


class InMemoryOutbox:
    """The worker's outbox without Kafka: each reply resolves the request waiting for it;
    events and OTPs are counted and dropped."""

    def __init__(self) -> None:
        self.waiting: dict[UUID, asyncio.Future[Reply]] = {}
        self.events = 0
        self.otps = 0

    async def event(self, key: str, event_json: str) -> Acknowledgement:
        self.events += 1
        return _acknowledged()

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        self.otps += 1

    async def reply(self, reply: Reply, partition: int | None) -> Acknowledgement:
        future = self.waiting.get(reply.command_id)
        if future is not None and not future.done():
            future.set_result(reply)
        return _acknowledged()


class InlineGateway:
    """The API's :class:`~api.gateway.Gateway`, deciding in-process instead of over Kafka."""

    def __init__(
        self, runs: AttemptRuns, service: BindingService, outbox: InMemoryOutbox, retry_after: int
    ) -> None:
        self._runs = runs
        self._service = service
        self._outbox = outbox
        self._retry_after = retry_after
        self._queued: list[Attempt] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def instance_id(self) -> str:
        return INSTANCE_ID

    @property
    def ready(self) -> bool:
        return True

    async def reachable(self) -> bool:
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._decide_forever(), name="inline-attempts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def send(self, command: Command) -> Reply:
        reply: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._outbox.waiting[command.command_id] = reply
        try:
            if isinstance(command, VerifySignature):
                self._queued.append((command, None))
                self._arrived.set()
            else:
                try:
                    await self._service.handle(command)
                except Exception:
                    logger.exception("command %s failed", command.command_id)
                    raise ServiceUnavailable(self._retry_after) from None
            return await reply
        finally:
            del self._outbox.waiting[command.command_id]

    async def _decide_forever(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            run, self._queued = self._queued, []
            try:
                await self._runs.handle(run)
            except Exception:
                # The worker would retry, and the API answer 503 after its wait: the same.
                logger.exception("a run of %d attempts failed", len(run))
                for command, _ in run:
                    waiting = self._outbox.waiting.get(command.command_id)
                    if waiting is not None and not waiting.done():
                        waiting.set_exception(ServiceUnavailable(self._retry_after))


def create_inline_app(settings: Settings, worker_settings: WorkerSettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keys = KeySet(settings)
        await keys.load()
        app.state.keys = keys
        refreshing = asyncio.create_task(keys.refresh_forever(), name="jwks-refresh")
        engine = create_engine(worker_settings.database_url)
        await prepare_database(engine, WORKER_MIGRATIONS, migrate=worker_settings.auto_migrate)
        outbox = InMemoryOutbox()
        ttl = timedelta(seconds=worker_settings.challenge_ttl_seconds)
        keyring = keyring_from(worker_settings.otp_encryption_keys)
        service = BindingService(Store(engine), outbox, keyring=keyring, challenge_ttl=ttl)
        store = attempt_store(
            worker_settings.database_url, sqlite_synchronous=worker_settings.sqlite_synchronous
        )
        verifier = BatchVerifier(worker_settings.verify_processes)
        runs = AttemptRuns(store, outbox, verifier=verifier, keyring=keyring, clock=utc_now)
        gateway = InlineGateway(runs, service, outbox, settings.retry_after_seconds)
        gateway.start()
        app.state.gateway = gateway
        try:
            yield
        finally:
            refreshing.cancel()
            await gateway.stop()
            await store.close()
            verifier.close()
            await engine.dispose()

    app = FastAPI(title="Device-binding inline peer (benchmark baseline)", lifespan=lifespan)
    serve_routes(app, settings)
    # One port for all: the probes and metrics beside the routes (the API has an admin port).
    serve_admin_routes(app)
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
        # As python -m api serves: the same parser, its bounds, and event loop on both sides.
        loop="uvloop",
        http=BoundedHttpToolsProtocol,
    )


if __name__ == "__main__":
    main()
