"""What a batch's transaction reads: its challenges, by kind, and its commands' ids."""

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.commands import AttemptCommand, VerifyDeviceSignature


@dataclass(frozen=True, slots=True)
class BatchReads:
    binding: list[str]  # ids of binding challenges (``challenges``)
    device: list[str]  # ids of device challenges (``device_challenges``)
    commands: list[str]
    # The requests, as identical ones are recognised: (challenge id, signature, client id).
    requests: list[tuple[str, str, str]]

    @classmethod
    def of(cls, commands: Sequence[AttemptCommand]) -> "BatchReads":
        binding: set[str] = set()
        device: set[str] = set()
        for command in commands:
            kind = device if isinstance(command, VerifyDeviceSignature) else binding
            kind.add(str(command.challenge_id))
        return cls(
            # Sorted: PostgreSQL locks rows in this order, the same in every batch.
            binding=sorted(binding),
            device=sorted(device),
            commands=[str(command.command_id) for command in commands],
            requests=sorted({(str(c.challenge_id), c.signature, c.client_id) for c in commands}),
        )
