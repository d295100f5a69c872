"""Commands that cannot be parsed go to the DLQ, as received, with the reason in headers.

They are never retried: a malformed command stays malformed. But a long run of them means
something upstream is broken (a bad deploy of a producer, a wrong topic), so past a limit of
consecutive dead letters the worker refuses to go on rather than empty the topic into the DLQ.
"""

import logging

from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker

from schemas.topics import DLQ_REASON_HEADER, DLQ_SOURCE_HEADER
from worker.errors import WorkerError
from worker.metrics import DEAD_LETTERS

logger = logging.getLogger(__name__)


class TooManyDeadLetters(WorkerError):
    """Consumption stops: the offset is not committed and the command stays on its topic."""


class DeadLetters:
    def __init__(self, broker: KafkaBroker, *, topic: str, max_consecutive: int) -> None:
        self._broker = broker
        self._topic = topic
        self._max_consecutive = max_consecutive
        self._consecutive = 0

    def reset(self) -> None:
        """A command was processed: the run of dead letters is over."""
        self._consecutive = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], *, reason: str) -> None:
        if self._consecutive >= self._max_consecutive:
            raise TooManyDeadLetters(
                f"{self._consecutive} unparseable commands in a row; not dead-lettering more"
            )
        source = f"{record.topic}/{record.partition}/{record.offset}"
        headers = {DLQ_REASON_HEADER: reason, DLQ_SOURCE_HEADER: source}
        await self._broker.publish(
            record.value or b"", topic=self._topic, key=record.key, headers=headers
        )
        self._consecutive += 1
        DEAD_LETTERS.inc()
        logger.warning("dead-lettered command %s: %s", source, reason)
