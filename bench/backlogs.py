"""What a drain's backlog is made of (``python -m bench.drain --kind``): binding signatures,
``VerifySignature`` on pending binding challenges (:mod:`bench.seed`), or device signatures,
``VerifyDeviceSignature`` on bound devices' pending device challenges
(:mod:`bench.device_seed`). Both are decided on the worker's one hot path."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from bench.device_seed import seed_device_challenges
from bench.seed import Ticket, seed, verify_command
from schemas.commands import VerifyDeviceSignature, VerifySignature
from schemas.events import EventType
from worker.otp_keyring import OtpKeyring


@dataclass(frozen=True)
class Backlog:
    kind: str
    # What the seed writes, for the progress lines.
    seeded: str
    # (database URL, count, the keyring sealing OTP digests or None for in clear) -> tickets
    seed: Callable[[str, int, OtpKeyring | None], list[Ticket]]
    command_type: type[VerifySignature] | type[VerifyDeviceSignature]
    # The event of a correct signature: the drain fails on any other, since it would not
    # have measured what it claims.
    verified: str

    def commands(
        self, tickets: Iterable[Ticket], *, reply_to: str | None
    ) -> Iterator[tuple[bytes, bytes]]:
        """The Kafka key and value of each ticket's command."""
        for ticket in tickets:
            yield verify_command(ticket, reply_to=reply_to, command_type=self.command_type)


BACKLOGS = {
    "binding": Backlog(
        kind="binding",
        seeded="pending binding challenges",
        seed=lambda url, count, keyring: seed(url, count, keyring=keyring),
        command_type=VerifySignature,
        verified=EventType.SIGNATURE_VERIFIED.value,
    ),
    "device": Backlog(
        kind="device",
        seeded="bound devices with a pending device challenge each",
        # Device challenges hold the digest of a string_to_sign, no secret: never sealed.
        seed=lambda url, count, _keyring: seed_device_challenges(url, count),
        command_type=VerifyDeviceSignature,
        verified=EventType.DEVICE_SIGNATURE_VERIFIED.value,
    ),
}
