"""An OTP from the CSPRNG to the SMS gateway's topic, exactly once per challenge.

The OTP lives only in the memory of the worker that drew it; the store keeps its digest,
sealed (:mod:`worker.otp_keyring`), and a lease: who is delivering it, and since when. A
worker that finds a stored challenge whose delivery is not recorded (its registration
redelivered after a rebalance or a crash) waits
while that lease is fresh rather than send a second OTP, which would void the first; once
the lease has expired, the OTP is taken for lost with its worker and replaced.
"""

import asyncio
import contextlib
import hashlib
import logging
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from schemas.challenges import ChallengeStatus
from schemas.devices import Language
from schemas.otp import OtpDelivery
from worker.errors import StoreContention
from worker.otp_keyring import OtpKeyring
from worker.store import Binding, Store

logger = logging.getLogger(__name__)

# How long a worker delivering a challenge's OTP holds it before another may take it for
# lost and send a new one. Longer than a delivery takes under load, shorter than a crashed
# worker's partitions take to move on.
DEFAULT_LEASE = timedelta(seconds=10)
_LEASE_POLL_SECONDS = 0.05


class OtpSender(Protocol):
    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        """Returns once Kafka has the OTP."""
        ...


def new_otp() -> str:
    """Six digits from the CSPRNG, leading zeros kept."""
    return f"{secrets.randbelow(1_000_000):06d}"


def otp_digest(otp: str) -> bytes:
    return hashlib.sha256(otp.encode("ascii")).digest()


class OtpDeliveries:
    def __init__(
        self,
        store: Store,
        sender: OtpSender,
        *,
        keyring: OtpKeyring,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._sender = sender
        self._keyring = keyring
        self._lease = lease
        self._clock = clock

    async def deliver(
        self, binding: Binding, language: Language, delivery: tuple[str, str] | None
    ) -> None:
        """Deliver the OTP of ``binding``'s challenge if it is this worker's to deliver and
        record it delivered. ``delivery``: the OTP and lease of a challenge just stored;
        None for a replay, which takes the delivery over only if it never happened and
        nobody else is doing it."""
        challenge = binding.challenge
        if (
            delivery is None
            and challenge.status == ChallengeStatus.PENDING
            and not challenge.otp_delivered
        ):
            delivery = await self._take_over(challenge.id)
        if delivery is None:
            return
        otp, claim = delivery
        try:
            await self._sender.deliver_otp(
                OtpDelivery(
                    challenge_id=uuid.UUID(challenge.id),
                    person_id=binding.device.person_id,
                    otp=otp,
                    language=language,
                    expires_at=challenge.expires_at,
                )
            )
        except Exception:
            # Not delivered (as far as this worker knows): the retry need not wait out the
            # lease. Best effort; an expired lease ends it too.
            with contextlib.suppress(Exception):
                await self._store.release_otp_claim(challenge.id, claim)
            raise
        if not await self._store.mark_otp_delivered(challenge.id, claim):
            # This worker stalled past its lease and another one delivered a new OTP: the
            # person has two, and only the later one is valid.
            logger.warning("OTP delivery of challenge %s was taken over", challenge.id)

    async def _take_over(self, challenge_id: str) -> tuple[str, str] | None:
        """A fresh OTP and lease for a stored challenge whose OTP never reached Kafka, or
        None when it did (or the challenge left pending); waits while another worker's
        lease is fresh."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lease.total_seconds()
        waited = False
        while True:
            binding = await self._store.find_binding(challenge_id)
            if binding is None:
                raise StoreContention(f"challenge {challenge_id} vanished")
            challenge = binding.challenge
            if challenge.status != ChallengeStatus.PENDING or challenge.otp_delivered:
                return None
            now = self._clock()
            claimed_at = challenge.otp_delivery_claimed_at
            if claimed_at is None or now - claimed_at >= self._lease:
                otp, claim = new_otp(), uuid.uuid4().hex
                if await self._store.claim_otp_delivery(
                    challenge_id,
                    digest=self._keyring.seal(challenge_id, otp_digest(otp)),
                    claim=claim,
                    now=now,
                    previous_claim=challenge.otp_delivery_claim,
                ):
                    return otp, claim
                continue  # claimed or delivered meanwhile: read again
            if loop.time() >= deadline:
                # The lease holder neither finished nor let its lease lapse (by this worker's
                # clock): retry the command later as a transient failure.
                raise StoreContention(f"OTP of challenge {challenge_id} is being delivered")
            if not waited:
                waited = True
                logger.info("waiting for another worker's OTP delivery of %s", challenge_id)
            await asyncio.sleep(_LEASE_POLL_SECONDS)
