"""The OTPs of the fault suite's load, read from the OTP topic in the background: what the
customers' phones would receive by SMS."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer

from tests.faults.client import GIVE_UP_AFTER


class OtpBook:
    """Every OTP delivered on the OTP topic, by challenge id."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._otps: dict[str, list[str]] = defaultdict(list)
        self._arrived = asyncio.Condition()

    @classmethod
    @asynccontextmanager
    async def reading(cls, bootstrap: str, topic: str) -> AsyncIterator[OtpBook]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        book = cls(consumer)
        task = asyncio.create_task(book._read(), name="otp-book")
        try:
            yield book
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await consumer.stop()

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            delivered = [r for batch in batches.values() for r in batch]
            if not delivered:
                continue
            async with self._arrived:
                for record in delivered:
                    value = json.loads(record.value)
                    self._otps[value["challenge_id"]].append(value["otp"])
                self._arrived.notify_all()

    def all_of(self, challenge_id: str) -> list[str]:
        return list(self._otps.get(challenge_id, []))

    async def latest(self, challenge_id: str, within: float = GIVE_UP_AFTER) -> str:
        """The newest OTP of the challenge, waiting for its first."""
        return await self._wait(challenge_id, lambda otps: bool(otps), within)

    async def newer_than(self, challenge_id: str, otp: str, within: float) -> str | None:
        """An OTP of the challenge other than ``otp`` (it was replaced), or None."""
        try:
            return await self._wait(
                challenge_id, lambda otps: bool(otps) and otps[-1] != otp, within
            )
        except TimeoutError:
            return None

    async def _wait(
        self, challenge_id: str, ready: Callable[[list[str]], bool], within: float
    ) -> str:
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: ready(self._otps.get(challenge_id, [])))
            return self._otps[challenge_id][-1]
