"""Turns one command into the worker's reply: publish, then await (the API has no database).

:class:`Gateway` is what the routes depend on; :class:`KafkaGateway` is the real one.

When Kafka is down at start-up the replica still starts: :meth:`KafkaGateway.start` keeps
connecting in the background (with back-off) and, until the producer is up and the reply
listener owns a reply partition, every command is refused with 503 ``service_unavailable``
and ``/readyz`` answers 503. Start-up waits up to ``kafka_connect_timeout_seconds`` for
that, so a healthy replica is ready when it begins to serve.
"""

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from opentelemetry.trace import SpanKind

from api.commands import CommandNotPublished, CommandPublisher
from api.errors import ServiceUnavailable, VerificationPending
from api.metrics import REPLY_WAIT
from api.replies import RepliesMoved, RepliesStopped, ReplyListener
from api.settings import Settings
from schemas.commands import Command
from schemas.replies import Reply
from telemetry.logs import log_context
from telemetry.tracing import tracer

logger = logging.getLogger(__name__)

_FIRST_RETRY_SECONDS = 0.5
_MAX_RETRY_SECONDS = 10.0
_READY_POLL_SECONDS = 0.05


class Gateway(Protocol):
    """Publishes a command and returns the reply addressed to this replica."""

    @property
    def instance_id(self) -> str:
        """The ``reply_to`` every command from this replica names."""
        ...

    @property
    def ready(self) -> bool:
        """Whether a command can be sent now."""
        ...

    async def reachable(self) -> bool:
        """Whether Kafka answers now: checked on each readiness probe, not only at start."""
        ...

    async def send(self, command: Command) -> Reply:
        """The worker's reply. Raises :class:`~api.errors.ServiceUnavailable` if the command
        could not be published and :class:`~api.errors.VerificationPending` if no reply came
        in time."""
        ...


class KafkaGateway:
    """The commands producer and the reply listener of one API replica."""

    def __init__(self, settings: Settings) -> None:
        self._instance_id = settings.instance_id
        self._reply_wait = settings.reply_wait_seconds
        self._retry_after = settings.retry_after_seconds
        self._connect_timeout = settings.kafka_connect_timeout_seconds
        self._commands = CommandPublisher(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.commands_topic,
            timeout_seconds=settings.publish_timeout_seconds,
            client_id=settings.instance_id,
        )
        self._replies = ReplyListener(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            topic=settings.replies_topic,
            instance_id=settings.instance_id,
        )
        self._connected = asyncio.Event()
        self._connecting: asyncio.Task[None] | None = None

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def ready(self) -> bool:
        return self._connected.is_set() and self._replies.partition is not None

    async def start(self) -> None:
        """Begin connecting in the background; see :meth:`wait_ready`."""
        self._connecting = asyncio.create_task(self._connect(), name="kafka-connect")

    async def wait_ready(self, timeout_seconds: float) -> bool:
        """Wait until connected and owning a reply partition, at most ``timeout_seconds``;
        whether it is."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_seconds):
                await self._connected.wait()
                while not self.ready:
                    await asyncio.sleep(_READY_POLL_SECONDS)
        return self.ready

    async def stop(self) -> None:
        task, self._connecting = self._connecting, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._connected.clear()
        await self._replies.stop()
        await self._commands.stop()

    async def reachable(self) -> bool:
        return self.ready and await self._commands.reachable(self._connect_timeout)

    async def send(self, command: Command) -> Reply:
        partition = self._replies.partition
        if not self._connected.is_set() or partition is None:
            raise ServiceUnavailable(self._retry_after)
        with (
            log_context(**command.log_fields()),
            tracer().start_as_current_span(f"send {command.type}", kind=SpanKind.PRODUCER),
            self._replies.expect(command.command_id, partition) as reply,
        ):
            try:
                await self._commands.publish(command, reply_partition=partition)
            except CommandNotPublished:
                raise ServiceUnavailable(self._retry_after) from None
            published = time.perf_counter()
            try:
                async with asyncio.timeout(self._reply_wait):
                    answer = await reply
            except (TimeoutError, RepliesMoved):
                REPLY_WAIT.labels(command.type, "timeout").observe(time.perf_counter() - published)
                logger.warning(
                    "no reply to command %s (%s) within %ss",
                    command.command_id,
                    command.type,
                    self._reply_wait,
                )
                raise VerificationPending(self._retry_after) from None
            except RepliesStopped:
                raise ServiceUnavailable(self._retry_after) from None
            REPLY_WAIT.labels(command.type, answer.outcome).observe(time.perf_counter() - published)
            return answer

    async def _connect(self) -> None:
        delay = _FIRST_RETRY_SECONDS
        while True:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await self._commands.start()
                    await self._replies.start()
            except Exception as exc:
                await self._replies.stop()
                await self._commands.stop()
                logger.warning(
                    "Kafka is not usable (%s); answering 503 and retrying in %.1fs",
                    str(exc) or type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_RETRY_SECONDS)
            else:
                logger.info("connected to Kafka as %s", self._instance_id)
                self._connected.set()
                return
