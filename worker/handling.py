"""One fetched batch of command records: parsed, decided, stored, announcements handed over.

The records are taken in order. Runs of signature attempts (the hot path: binding and
device signatures alike) are decided
together, one store transaction per run (:mod:`worker.attempts.store`); every other command
is handled alone by :class:`~worker.binding.BindingService`, in its place in the order, so
that what a partition's earlier commands did is stored before its later ones are decided.

:meth:`BatchHandler.handle` returns how many records, from the first, are handled, and the
acknowledgements their announcements are waiting for. Fewer than all are handled when one
failed transiently: it was logged, the worker paused, and the consumer starts again from it.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeAlias

from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from schemas.commands import ATTEMPT_COMMANDS, COMMAND_ADAPTER, Command
from schemas.topics import REPLY_PARTITION_HEADER
from telemetry.logs import log_context
from telemetry.tracing import context_from_headers, tracer
from worker.attempts.runs import Attempt, AttemptRuns
from worker.attempts.transactions import Halted
from worker.binding import BindingService
from worker.dead_letters import DeadLetters, TooManyDeadLetters
from worker.decisions.attempts import AttemptDecisions
from worker.failures import refused_data, sqlstate
from worker.metrics import COMMAND_DURATION, COMMAND_TO_EVENT, COMMANDS
from worker.outbox import Acknowledgement

logger = logging.getLogger(__name__)

Record: TypeAlias = ConsumerRecord[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A command and where it came from; ``reply_partition`` from its headers."""

    command: Command
    record: Record
    reply_partition: int | None


@dataclass(slots=True)
class Handled:
    """What :meth:`BatchHandler.handle` did with a batch."""

    count: int = 0  # records handled, from the first
    acknowledgements: list[Acknowledgement] = field(default_factory=list)
    # The handled commands, for the metrics taken once their announcements are acknowledged.
    commands: list[Command] = field(default_factory=list)

    def acknowledged(self) -> None:
        """Record the command-to-event latency; called once every acknowledgement came."""
        now = datetime.now(UTC)
        for command in self.commands:
            COMMAND_TO_EVENT.labels(command.type).observe((now - command.issued_at).total_seconds())


def parse(record: Record) -> Parsed | ValidationError:
    try:
        command = COMMAND_ADAPTER.validate_json(record.value or b"")
    except ValidationError as error:
        return error
    return Parsed(command, record, _reply_partition(record))


def _reply_partition(record: Record) -> int | None:
    for name, value in record.headers:
        if name == REPLY_PARTITION_HEADER:
            # Anything but a small decimal is ignored: the reply then goes by its key.
            text = value.decode("ascii", errors="replace")
            return int(text) if text.isdecimal() and len(text) < 6 else None
    return None


def _attempts(run: Sequence[Parsed]) -> list[Attempt]:
    return [
        (item.command, item.reply_partition)
        for item in run
        if isinstance(item.command, ATTEMPT_COMMANDS)
    ]


def describe(error: ValidationError) -> str:
    """Where and why a command is malformed, without echoing any of its values."""
    problems = [
        f"{'.'.join(str(part) for part in issue['loc']) or 'body'}: {issue['msg']}"
        for issue in error.errors(include_input=False, include_url=False)[:5]
    ]
    return "; ".join(problems)


class _Failed(Exception):
    """A command failed transiently; logged and paused for already."""


@dataclass(slots=True)
class Batch:
    """A fetched batch, parsed; when every record is a signature attempt, one run whose
    decision is under way (``decided``)."""

    records: Sequence[Record]
    parsed: list[Parsed | ValidationError]
    run: list[Parsed] | None = None
    decided: asyncio.Future[AttemptDecisions] | None = None

    @property
    def pipelined(self) -> bool:
        return self.decided is not None


@dataclass(kw_only=True)
class BatchHandler:
    attempts: AttemptRuns
    service: BindingService
    dead_letters: DeadLetters
    retry_backoff_seconds: float
    # Set when a pipelined batch failed in a way only one-by-one handling can sort out (the
    # database refusing one command's values): the consumer's next batch is handled in
    # order, not pipelined.
    careful: bool = False

    def resume(self) -> None:
        """The batches after a failure are being read again: decide them again."""
        self.attempts.resume()

    def start(self, records: Sequence[Record], *, pipelined: bool) -> Batch:
        """Parse ``records``; when all are signature attempts and ``pipelined``, queue their
        decision at once (it runs behind the runs queued before it)."""
        parsed = [parse(record) for record in records]
        batch = Batch(records, parsed)
        if pipelined and all(
            isinstance(item, Parsed) and isinstance(item.command, ATTEMPT_COMMANDS)
            for item in parsed
        ):
            batch.run = [item for item in parsed if isinstance(item, Parsed)]
            batch.decided = self.attempts.decide(_attempts(batch.run))
        return batch

    async def finish(self, batch: Batch) -> Handled:
        """Announce a pipelined batch once decided, or handle any other batch in order."""
        if batch.decided is None or batch.run is None:
            return await self._handle_in_order(batch)
        handled = Handled()
        decided, run = batch.decided, batch.run

        async def announce(items: Sequence[Parsed], handled: Handled) -> None:
            handled.acknowledgements.extend(
                await self.attempts.announce(_attempts(run), await decided)
            )

        try:
            await self._guarded(run, handled, announce, split=False)
        except _Failed:
            return handled
        self.dead_letters.reset()
        handled.count = len(run)
        return handled

    async def handle(self, records: Sequence[Record]) -> Handled:
        """Handle ``records`` in order, without pipelining."""
        return await self._handle_in_order(self.start(records, pipelined=False))

    async def _handle_in_order(self, batch: Batch) -> Handled:
        handled = Handled()
        run: list[Parsed] = []
        try:
            for record, parsed in zip(batch.records, batch.parsed, strict=True):
                if isinstance(parsed, Parsed) and isinstance(parsed.command, ATTEMPT_COMMANDS):
                    run.append(parsed)
                    continue
                # What comes before is handled first, so that the count is a true prefix.
                await self._handle_attempts(run, handled)
                run = []
                if isinstance(parsed, ValidationError):
                    await self._dead_letter(record, describe(parsed), handled, "unparseable")
                else:
                    await self._handle_one(parsed, handled)
                handled.count += 1
            await self._handle_attempts(run, handled)
        except (_Failed, TooManyDeadLetters):
            pass  # logged and paused where it happened; the records from here on are redone
        else:
            self.careful = False
        return handled

    async def _dead_letter(self, record: Record, reason: str, handled: Handled, kind: str) -> None:
        COMMANDS.labels(kind, "dead_lettered").inc()
        try:
            handled.acknowledgements.append(await self.dead_letters.send(record, reason=reason))
        except TooManyDeadLetters:
            # Halted on purpose (see worker/dead_letters.py); the pause keeps the halted
            # worker from spinning on the same command until someone steps in.
            logger.exception("halted before command at offset %d", record.offset)
            await asyncio.sleep(self.retry_backoff_seconds)
            raise

    async def _handle_attempts(self, run: list[Parsed], handled: Handled) -> None:
        if not run:
            return
        self.dead_letters.reset()
        await self._guarded(run, handled, self._decide_attempts)
        handled.count += len(run)

    async def _handle_one(self, parsed: Parsed, handled: Handled) -> None:
        self.dead_letters.reset()

        async def one(items: Sequence[Parsed], _: Handled) -> None:
            await self.service.handle(parsed.command, reply_partition=parsed.reply_partition)

        await self._guarded([parsed], handled, one)

    async def _decide_attempts(self, run: Sequence[Parsed], handled: Handled) -> None:
        handled.acknowledgements.extend(await self.attempts.handle(_attempts(run)))

    async def _guarded(
        self,
        items: Sequence[Parsed],
        handled: Handled,
        work: Callable[[Sequence[Parsed], Handled], Awaitable[None]],
        *,
        split: bool = True,
    ) -> None:
        """``work`` on ``items`` with their logs, trace and metrics. A failure that can pass
        on a retry raises :class:`_Failed` after a pause; a command whose values the database
        refuses for good is dead-lettered, found by trying the commands one by one (or, when
        not ``split``, by the next, careful, handling of the batch)."""
        started = time.perf_counter()
        first = items[0]
        with (
            log_context(**first.command.log_fields()),
            # The trace begun by the API request continues here (traceparent header); a run
            # continues its first command's.
            tracer().start_as_current_span(
                f"handle {first.command.type}"
                + (f" and {len(items) - 1} more" if len(items) > 1 else ""),
                context=context_from_headers(first.record.headers),
                kind=SpanKind.CONSUMER,
            ),
        ):
            try:
                await work(items, handled)
            except Halted:
                raise _Failed from None  # behind a failure, which was logged and paused for
            except Exception as error:
                if refused_data(error) and split:
                    await self._refused(items, handled, work, error)
                    return
                if refused_data(error):
                    self.careful = True
                for item in items:
                    COMMANDS.labels(item.command.type, "failed").inc()
                # Stored decisions make a retry safe; pausing keeps a database or broker
                # outage from turning into a hot loop.
                logger.exception("command %s failed; retrying", first.command.command_id)
                await asyncio.sleep(self.retry_backoff_seconds)
                raise _Failed from error
        elapsed = time.perf_counter() - started
        for item in items:
            COMMANDS.labels(item.command.type, "handled").inc()
            COMMAND_DURATION.labels(item.command.type).observe(elapsed / len(items))
            handled.commands.append(item.command)

    async def _refused(
        self,
        items: Sequence[Parsed],
        handled: Handled,
        work: Callable[[Sequence[Parsed], Handled], Awaitable[None]],
        error: Exception,
    ) -> None:
        if len(items) == 1:
            # The database refuses this command's values for good: a retry would block its
            # partition for ever. The DLQ keeps it for a human; nothing of it was stored.
            reason = f"the store refused its data (SQLSTATE {sqlstate(error)})"
            await self._dead_letter(items[0].record, reason, handled, items[0].command.type)
            return
        # One of several: each alone finds out which.
        for item in items:
            await self._guarded([item], handled, work)
