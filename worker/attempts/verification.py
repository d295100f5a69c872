"""The signatures of a batch, verified before its decision, off the event loop's thread.

ECDSA is most of what a signature attempt costs, and the one part that needs no Python: each
verification is a single call into ``cryptography``, which releases the GIL. So as soon as a
batch is fetched, the keys and digests of its challenges are read (a snapshot, no lock) and
its verifications go to a pool of their own (:class:`BatchVerifier`), while the event loop
decides and stores the batch before it. The decision
(:func:`worker.decisions.attempts.decide_attempts`) then looks the verdicts up; it stays a
pure function of the state, the commands and the time.

The pool is processes by default: a thread would need the GIL back after every call, and
waits for it behind the event loop's own Python (measured: no faster than verifying on the
loop). ``VERIFY_PROCESSES=0`` verifies on the loop itself.
"""

import asyncio
import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from schemas.challenges import ChallengeStatus
from schemas.commands import AttemptCommand
from schemas.devices import DeviceStatus
from worker.decisions.attempts import AttemptState, SignatureCheck
from worker.keys import PublicKeys
from worker.signatures import signature_check
from worker.state import ChallengeKind, DeviceState

# What one verification needs: the key's id and hex (decoded once per key id), the digest
# signed, and the signature's hex.
Candidate = tuple[str, str, bytes, str]
Verdicts = dict[tuple[str, bytes, str], bool]

# The pool process's own cache of decoded keys (each process has its own).
_KEYS = PublicKeys()
# Fewer verifications than this are done on the loop: handing them to a process and back
# (about a millisecond) costs more than a dozen verifications, and a lone request would wait
# for it.
POOL_FROM = 16


def verify_many(candidates: Sequence[Candidate]) -> list[bool]:
    """Run in the pool: whether each candidate's signature verifies."""
    check = signature_check(_KEYS)
    return [
        check(_device(key_id, public_key), digest, signature)
        for key_id, public_key, digest, signature in candidates
    ]


def _device(key_id: str, public_key: str) -> DeviceState:
    # Only the key matters to the check.
    return DeviceState(
        id="",
        key_id=key_id,
        client_id="",
        person_id="",
        public_key=public_key,
        status=DeviceStatus.PENDING,
    )


@dataclass(frozen=True, slots=True)
class PendingKey:
    """What verifying a signature for a pending challenge needs: the key that signs it and
    the digest of what it signs (its OTP, or its string_to_sign)."""

    key_id: str
    public_key: str
    digest: bytes  # a binding challenge's as stored (sealed) until opened
    kind: ChallengeKind = ChallengeKind.BINDING


def pending_keys(state: AttemptState) -> dict[str, PendingKey]:
    """The pending challenges of ``state`` that hold a digest, by challenge id."""
    return {
        challenge_id: PendingKey(
            challenge.device.key_id,
            challenge.device.public_key,
            challenge.digest,
            challenge.kind,
        )
        for challenge_id, challenge in state.challenges.items()
        if challenge.status is ChallengeStatus.PENDING and challenge.digest is not None
    }


def candidates(
    keys: Mapping[str, PendingKey], commands: Sequence[AttemptCommand]
) -> list[Candidate]:
    """The signatures the decision may check: those of commands whose challenge is pending
    with its OTP's digest (a superset of what the rules end up verifying: a challenge
    closed by an earlier command of the same batch is verified for nothing)."""
    wanted: dict[tuple[str, bytes, str], Candidate] = {}
    for command in commands:
        key = keys.get(str(command.challenge_id))
        if key is not None:
            wanted.setdefault(
                (key.key_id, key.digest, command.signature),
                (key.key_id, key.public_key, key.digest, command.signature),
            )
    return list(wanted.values())


class BatchVerifier:
    """Verifies batches of candidates in a pool of ``processes`` (0: on the caller's loop).

    Verdicts are keyed by (key id, digest, signature): a verdict reached on a snapshot of
    the store holds whatever the locked state says, and a candidate the snapshot did not
    have (its OTP replaced meanwhile) is simply not found and verified then."""

    def __init__(self, processes: int) -> None:
        self._processes = processes
        self._pool: Executor | None = None
        self._inline = signature_check(PublicKeys())

    def _executor(self) -> Executor:
        if self._pool is None:
            # spawn: a fork of a process running an event loop and threads is not safe.
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self._processes, mp_context=context)
        return self._pool

    async def verify(self, candidates: Sequence[Candidate]) -> Verdicts:
        if not candidates:
            return {}
        if self._processes == 0 or len(candidates) < POOL_FROM:
            results = [
                self._inline(_device(key_id, public_key), digest, signature)
                for key_id, public_key, digest, signature in candidates
            ]
        else:
            loop = asyncio.get_running_loop()
            try:
                results = await loop.run_in_executor(self._executor(), verify_many, candidates)
            except BrokenProcessPool:
                # A pool process died (killed, out of memory): the next batch gets a new pool;
                # this one is retried as any transient failure is.
                self.close()
                raise
        return {
            (key_id, digest, signature): verified
            for (key_id, _, digest, signature), verified in zip(candidates, results, strict=True)
        }

    def check(self, verdicts: Verdicts) -> SignatureCheck:
        """The decision's signature check: the verdict found, else verified here."""

        def verifies(device: DeviceState, digest: bytes, signature: str) -> bool:
            verdict = verdicts.get((device.key_id, digest, signature))
            return self._inline(device, digest, signature) if verdict is None else verdict

        return verifies

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
