"""A stand-in for the worker in the real-Kafka tests: reads commands, publishes replies.

It lives in the tests, never in ``api``: the API must work against anything that honours
the commands and replies contract.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.commands import COMMAND_ADAPTER, Command
from schemas.replies import Reply
from schemas.topics import REPLY_PARTITION_HEADER

# What to publish, in order, in answer to a command: replies or raw (possibly broken) bytes.
Script = Callable[[Command], Sequence[Reply | bytes]]


def silent(command: Command) -> Sequence[Reply | bytes]:
    return []


class Responder:
    """Answers each command on ``commands_topic`` with ``script(command)``."""

    def __init__(
        self, bootstrap: str, *, commands_topic: str, replies_topic: str, script: Script
    ) -> None:
        self.script = script
        self.received: list[tuple[bytes | None, Command]] = []
        # The reply partition each command named (its header), by command id.
        self.reply_partitions: dict[str, int | None] = {}
        self.commands: asyncio.Queue[Command] = asyncio.Queue()
        self._replies_topic = replies_topic
        # No group: every partition, from the beginning, so no command can slip past.
        self._consumer = AIOKafkaConsumer(
            commands_topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Responder:
        await self._producer.start()
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._task is not None
        self._task.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task  # re-raises what broke the responder, if anything did
        finally:
            await self._consumer.stop()
            await self._producer.stop()

    async def publish(self, command: Command, message: Reply | bytes) -> None:
        value = message if isinstance(message, bytes) else message.model_dump_json().encode()
        # Keyed by the command id and to the partition the command named, as the worker's
        # replies are (schemas/topics.py), but without the reply-to header, so the listener
        # must judge the body too.
        key = str(command.command_id).encode()
        partition = self.reply_partitions.get(str(command.command_id))
        await self._producer.send_and_wait(self._replies_topic, value, key=key, partition=partition)

    async def _run(self) -> None:
        async for record in self._consumer:
            command = COMMAND_ADAPTER.validate_json(record.value)
            named = dict(record.headers).get(REPLY_PARTITION_HEADER)
            self.reply_partitions[str(command.command_id)] = int(named) if named else None
            self.received.append((record.key, command))
            await self.commands.put(command)
            for message in self.script(command):
                await self.publish(command, message)
