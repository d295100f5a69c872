"""Commands that cannot be processed go to the DLQ, as received, with the reason in headers.

They are never retried: a malformed command stays malformed. But a long run of them means
something upstream is broken (a bad deploy of a producer, a wrong topic), so past a limit of
consecutive dead letters the worker refuses to go on rather than empty the topic into the DLQ.
"""

import logging

from aiokafka.structs import ConsumerRecord

from worker.errors import WorkerError
from worker.metrics import DEAD_LETTERS
from worker.outbox import Acknowledgement, KafkaOutbox

logger = logging.getLogger(__name__)


class TooManyDeadLetters(WorkerError):
    """Consumption stops: the offset is not committed and the command stays on its topic."""


class DeadLetters:
    def __init__(self, outbox: KafkaOutbox, *, max_consecutive: int) -> None:
        self._outbox = outbox
        self._max_consecutive = max_consecutive
        self._consecutive = 0

    def reset(self) -> None:
        """A command was processed: the run of dead letters is over."""
        self._consecutive = 0

    async def send(self, record: ConsumerRecord[bytes, bytes], *, reason: str) -> Acknowledgement:
        """Hand ``record`` to the DLQ; its acknowledgement is awaited with its batch's."""
        if self._consecutive >= self._max_consecutive:
            raise TooManyDeadLetters(
                f"{self._consecutive} unprocessable commands in a row; not dead-lettering more"
            )
        acknowledgement = await self._outbox.dead_letter(record, reason=reason)
        self._consecutive += 1
        DEAD_LETTERS.inc()
        logger.warning(
            "dead-lettered command %s/%s/%s: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        return acknowledgement
