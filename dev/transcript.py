"""What ``make demo`` prints: its numbered steps, and the events each step caused.
DEVELOPMENT ONLY.

The events come from the events topic, read from the demo's start on and kept, so a step
can show those of its own subject (a challenge; the device, for ``key_added``) in whatever
order they arrive.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from harness.topics import tail
from messaging import KafkaConnection

EVENT_WAIT_SECONDS = 20.0
_numbers = itertools.count(1)


def step(title: str, detail: object = "") -> None:
    """Print the next numbered step, with ``detail`` (JSON if a dict or list)."""
    number = next(_numbers)
    text = as_text(detail) if isinstance(detail, dict | list) else str(detail)
    heading = f"\n== {number}. {title}"
    print(f"{heading}\n{text}" if text else heading, flush=True)


def as_text(document: object) -> str:
    """JSON as the demo prints it: indented, with ``ä`` as itself rather than ``\\u00e4``."""
    return json.dumps(document, indent=2, ensure_ascii=False)


def verdict(done: bool, yes: str, no: str) -> bool:
    """Print the outcome of a part of the demo (``DEVICE BOUND``, ``LOGIN SIGNED``...)."""
    print(f"\n{yes if done else no}", flush=True)
    return done


class EventLog:
    """The events published since the demo started, by subject."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._seen: list[dict[str, Any]] = []

    @classmethod
    async def tail(
        cls, bootstrap: str, topic: str, connection: KafkaConnection | None = None
    ) -> EventLog:
        return cls(await tail(bootstrap, topic, connection))

    async def stop(self) -> None:
        await self._consumer.stop()

    async def of(self, subject: str, count: int) -> list[dict[str, Any]]:
        """The first ``count`` events about ``subject``, or those that arrived within
        :data:`EVENT_WAIT_SECONDS`."""
        try:
            async with asyncio.timeout(EVENT_WAIT_SECONDS):
                while len(self._about(subject)) < count:
                    for records in (await self._consumer.getmany(timeout_ms=500)).values():
                        self._seen.extend(json.loads(record.value) for record in records)
        except TimeoutError:
            pass
        return self._about(subject)[:count]

    async def show(self, subject: str, count: int) -> list[str]:
        """Print the events about ``subject`` (``count`` expected); their types."""
        found = await self.of(subject, count)
        for event in found:
            print(f"\n   event {event['type']}\n{as_text(event)}", flush=True)
        if len(found) < count:
            print(
                f"\n   only {len(found)} of {count} events about {subject} arrived within"
                f" {EVENT_WAIT_SECONDS:.0f} s",
                flush=True,
            )
        return [str(event["type"]) for event in found]

    def _about(self, subject: str) -> list[dict[str, Any]]:
        return [event for event in self._seen if event.get("subject") == subject]
