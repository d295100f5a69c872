"""Runs of signature attempts: decided in one store transaction each, then announced together.

Deciding and announcing are separate steps, so that the consumer can decide the next run
while it announces this one (:mod:`worker.consumer`). The store runs the transactions in the
order they were queued and halts after a failure (:mod:`worker.attempts.store`).

Announcing hands every event and reply to the producer without waiting for Kafka and returns
their acknowledgements: the consumer waits for them once per batch.
"""

import asyncio
import contextlib
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from schemas.commands import AttemptCommand
from schemas.reasons import Reason
from schemas.replies import Reply
from telemetry import limits
from telemetry.limits import LIMITED
from worker.answers import Clock
from worker.attempts.openings import RunDigests
from worker.attempts.reads import BatchReads
from worker.attempts.store import AttemptStore
from worker.attempts.verification import (
    POOL_FROM,
    BatchVerifier,
    Verdicts,
    candidates,
    pending_keys,
)
from worker.decisions.attempts import AttemptDecisions, AttemptState, decide_attempts
from worker.decisions.persons import DEFAULT_PERSON_LOCK
from worker.metrics import VERIFICATION_OUTCOMES
from worker.otp_keyring import OtpKeyring
from worker.outbox import Acknowledgement

# An attempt and the reply partition its sender named (None: the reply goes by its key).
Attempt = tuple[AttemptCommand, int | None]


class Announcer(Protocol):
    """Where decisions go (:class:`worker.outbox.KafkaOutbox`); hand-over only, no wait."""

    async def event(self, key: str, event_json: str) -> Acknowledgement: ...

    async def reply(self, reply: Reply, partition: int | None) -> Acknowledgement: ...


class AttemptRuns:
    def __init__(
        self,
        store: AttemptStore,
        outbox: Announcer,
        *,
        verifier: BatchVerifier,
        keyring: OtpKeyring,
        clock: Clock,
        person_lock: timedelta = DEFAULT_PERSON_LOCK,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._verifier = verifier
        self._keyring = keyring
        self._clock = clock
        self._person_lock = person_lock
        self._last: asyncio.Future[AttemptDecisions] | None = None

    def decide(self, run: Sequence[Attempt]) -> asyncio.Future[AttemptDecisions]:
        """Start verifying ``run``'s signatures and queue its transaction behind those
        already queued; the future is done once its decisions are stored (or raises, with
        nothing stored)."""
        commands = [command for command, _ in run]
        reads = BatchReads.of(commands)
        now = self._clock()
        # Binding challenges' digests are stored sealed: opened for this run only, once.
        digests = RunDigests(self._keyring)
        # A small run is verified under the lock, on the loop: no early read, no hand-over.
        early = (
            asyncio.ensure_future(self._verify_early(reads, commands, digests))
            if len(commands) >= POOL_FROM
            else None
        )
        if early is not None:
            # Read here or by nobody (a halted transaction never asks): never unretrieved.
            early.add_done_callback(_retrieve)

        async def decide(state: AttemptState) -> AttemptDecisions:
            state = digests.state(state)
            verdicts: Verdicts = {}
            if early is not None:
                with contextlib.suppress(Exception):  # failed: verified now, under the lock
                    verdicts = await early
            late = [
                candidate
                for candidate in candidates(pending_keys(state), commands)
                if (candidate[0], candidate[2], candidate[3]) not in verdicts
            ]
            if late:
                verdicts |= await self._verifier.verify(late)
            check = self._verifier.check(verdicts)
            return decide_attempts(
                state,
                commands,
                now=now,
                signature_verifies=check,
                person_lock=self._person_lock,
            )

        self._last = self._store.submit(reads, decide)
        return self._last

    async def _verify_early(
        self, reads: BatchReads, commands: Sequence[AttemptCommand], digests: RunDigests
    ) -> Verdicts:
        keys = digests.keys(await self._store.pending_keys(reads))
        return await self._verifier.verify(candidates(keys, commands))

    async def announce(
        self, run: Sequence[Attempt], decisions: AttemptDecisions
    ) -> list[Acknowledgement]:
        """Hand the events and replies of ``run``'s stored decisions over; their
        acknowledgements to wait for."""
        acknowledgements: list[Acknowledgement] = []
        for (command, partition), outcome in zip(run, decisions.outcomes, strict=True):
            acknowledgements.append(await self._outbox.event(outcome.event_key, outcome.event_json))
            for key, event_json in outcome.extra_events:  # a person_locked event
                acknowledgements.append(await self._outbox.event(key, event_json))
            if command.reply_to is not None:  # None: nobody waits (another producer)
                reply = Reply(
                    command_id=command.command_id,
                    reply_to=command.reply_to,
                    outcome="ok" if outcome.verified else "rejected",
                    reason=outcome.reason,
                    attempts_remaining=outcome.attempts_remaining,
                    locked_until=outcome.locked_until,
                    retry_after_seconds=_seconds_until(outcome.locked_until, self._clock()),
                )
                acknowledgements.append(await self._outbox.reply(reply, partition))
            if outcome.reason is Reason.PERSON_TEMPORARILY_LOCKED:
                LIMITED.labels(limits.PERSON_LOCKED).inc()
            VERIFICATION_OUTCOMES.labels(
                "verified" if outcome.verified else "rejected", outcome.reason or "none"
            ).inc()
        return acknowledgements

    async def handle(self, run: Sequence[Attempt]) -> list[Acknowledgement]:
        """Decide ``run`` (after everything queued before it) and announce it."""
        return await self.announce(run, await self.decide(run))

    def resume(self) -> None:
        """After a failure has been dealt with (the runs read again): decide again."""
        self._store.resume()


def _seconds_until(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(1, math.ceil((moment - now).total_seconds()))


def _retrieve(future: asyncio.Future[Verdicts]) -> None:
    if not future.cancelled():
        future.exception()
