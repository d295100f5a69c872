"""The two kinds of challenge the fault suite's load signs, as the invariants tell them apart:
the route a signature is put to, and the events a worker announces for it."""

from __future__ import annotations

from dataclasses import dataclass

DEVICES = "/v1/mfa/devices"


@dataclass(frozen=True)
class Kind:
    name: str
    # Where its signatures are put (``PUT {path}/{id}``); a device challenge is opened here too.
    path: str
    # The status of the answer that opened it (registration, or POST of a device challenge).
    opened: int
    created: str
    verified: str
    rejected: str


BINDING = Kind(
    name="binding",
    path="/v1/mfa/challenges/signatures",
    opened=202,
    created="mfa.device_binding.challenge_created",
    verified="mfa.device_binding.signature_verified",
    rejected="mfa.device_binding.signature_rejected",
)
DEVICE = Kind(
    name="device",
    path="/v1/mfa/challenges/devices",
    opened=201,
    created="mfa.device_binding.device_challenge_created",
    verified="mfa.device_binding.device_signature_verified",
    rejected="mfa.device_binding.device_signature_rejected",
)
KINDS = (BINDING, DEVICE)
