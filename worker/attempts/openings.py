"""A run's sealed OTP digests, opened in memory before its signatures are verified.

The store hands binding challenges' digests over as they are stored, sealed
(:mod:`worker.otp_keyring`); the decision and the verification pool need them in clear.
Each run opens them here, at both of its reads: the early snapshot (whose verdicts are
computed ahead) and the locked read the decision is made on. A digest opened for the first
is not opened again for the second: AES-GCM is cheap, but a batch of 500 would do it twice.

A digest that does not open (its key removed from ``OTP_ENCRYPTION_KEYS``, the value copied
from another challenge, tampered with) is handed to the decision as no digest at all: the
decision refuses such a challenge as spent, ``challenge_locked``, counting nothing
(:mod:`worker.decisions.attempts`). Nothing is written back: the store keeps the sealed
value while the challenge is pending, so putting the key back makes it verifiable again.
"""

import logging
from collections.abc import Mapping
from dataclasses import replace

from worker.attempts.verification import PendingKey
from worker.decisions.attempts import AttemptState
from worker.otp_keyring import OtpKeyring
from worker.state import ChallengeKind, ChallengeState

logger = logging.getLogger(__name__)


class RunDigests:
    """The sealed digests of one run, each opened once."""

    __slots__ = ("_keyring", "_opened")

    def __init__(self, keyring: OtpKeyring) -> None:
        self._keyring = keyring
        self._opened: dict[tuple[str, bytes], bytes | None] = {}

    def open(self, challenge_id: str, sealed: bytes) -> bytes | None:
        """The digest, or None when ``sealed`` does not open for ``challenge_id``."""
        found = (challenge_id, sealed)
        if found in self._opened:
            return self._opened[found]
        digest = self._opened[found] = self._keyring.open(challenge_id, sealed)
        return digest

    def keys(self, keys: Mapping[str, PendingKey]) -> dict[str, PendingKey]:
        """``keys`` with binding challenges' digests opened; those that do not open are
        left out (the locked read decides them)."""
        opened: dict[str, PendingKey] = {}
        for challenge_id, key in keys.items():
            if key.kind is ChallengeKind.BINDING:
                digest = self.open(challenge_id, key.digest)
                if digest is None:
                    continue
                key = replace(key, digest=digest)
            opened[challenge_id] = key
        return opened

    def state(self, state: AttemptState) -> AttemptState:
        """``state`` with binding challenges' digests opened (None where they do not)."""
        challenges: dict[str, ChallengeState] = dict(state.challenges)
        unopened = []
        for challenge_id, challenge in state.challenges.items():
            if challenge.kind is ChallengeKind.BINDING and challenge.digest is not None:
                digest = self.open(challenge_id, challenge.digest)
                if digest is None:
                    unopened.append(challenge_id)
                challenges[challenge_id] = replace(challenge, digest=digest)
        if unopened:
            # Ids only: which challenges an operator should look at (a key removed too
            # early, or rows tampered with), nothing of what they hold.
            logger.warning(
                "OTP digest did not open (unknown kid, another challenge's or tampered);"
                " refused: %s",
                ", ".join(sorted(unopened)),
            )
        return replace(state, challenges=challenges)
