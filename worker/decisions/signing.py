"""Device signing (SPEC §8) off the hot path: opening a device challenge, adding a key.

Pure functions of (stored rows, command, now): the store reads the device and its keys,
these decide, the store writes what they return. Signatures on device challenges are
decided with the binding attempts (:mod:`worker.decisions.attempts`).

Opening a challenge chooses the key that is to sign it:

1. the device is unknown, another client's or not bound: ``not_found``;
2. the purpose asked for, or else the restricted key when the device holds one, else the
   unrestricted one;
3. a transaction needs the restricted key: without it (held and chosen),
   ``restricted_key_required``; so does asking for ``restricted`` on a device without one;
   asking for ``unrestricted`` on a device without one is ``key_purpose_missing``.

Adding a key: the device must be bound and the client's (else ``not_found``); its key of
``signature_key_purpose`` must have signed the new key's lowercase hex (else
``invalid_signature``, whether the purpose is held or not: a caller without a key learns
nothing); the new purpose must be free (else ``key_purpose_taken``).
"""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.challenges import ChallengeStatus
from schemas.commands import AddDeviceKey, OpenDeviceChallenge
from schemas.devices import DeviceStatus, KeyPurpose
from schemas.reasons import Reason
from schemas.signing import string_to_sign
from worker.tables import DeviceChallengeRow, DeviceKeyRow, DeviceRow

# Whether ``signature_hex`` by the key (hex of its SEC1 point) verifies over ``message``.
MessageCheck = Callable[[str, bytes, str], bool]


@dataclass(frozen=True, slots=True)
class Refused:
    reason: Reason


def visible(device: DeviceRow | None, client_id: str) -> DeviceRow | None:
    """The device if the client may sign with it: its own, and bound."""
    if device is None or device.client_id != client_id or device.status != DeviceStatus.BOUND:
        return None
    return device


def chosen_key(
    keys: Mapping[KeyPurpose, DeviceKeyRow], command: OpenDeviceChallenge
) -> DeviceKeyRow | Refused:
    """The key that is to sign the challenge ``command`` opens (rules 2 and 3)."""
    wanted = command.key_purpose
    if wanted is None:
        wanted = KeyPurpose.RESTRICTED if KeyPurpose.RESTRICTED in keys else KeyPurpose.UNRESTRICTED
    if command.transaction is not None and wanted is not KeyPurpose.RESTRICTED:
        return Refused(Reason.RESTRICTED_KEY_REQUIRED)
    key = keys.get(wanted)
    if key is None:
        if wanted is KeyPurpose.RESTRICTED:
            return Refused(Reason.RESTRICTED_KEY_REQUIRED)
        return Refused(Reason.KEY_PURPOSE_MISSING)
    return key


def device_challenge_row(
    command: OpenDeviceChallenge,
    key: DeviceKeyRow,
    *,
    now: datetime,
    ttl: timedelta,
    nonce: str,
) -> DeviceChallengeRow:
    """The pending challenge ``command`` opens, with its string to sign and that string's
    SHA-256 (what verification needs)."""
    expires_at = now + ttl
    text = string_to_sign(
        challenge_id=command.challenge_id,
        nonce=nonce,
        created_at=now,
        expires_at=expires_at,
        transaction=command.transaction,
    )
    transaction = command.transaction
    return DeviceChallengeRow(
        id=str(command.challenge_id),
        device_id=str(command.device_id),
        key_id=key.id,
        key_purpose=key.key_purpose,
        status=ChallengeStatus.PENDING.value,
        string_to_sign=text,
        message_digest=hashlib.sha256(text.encode()).digest(),
        transaction_json=None if transaction is None else transaction.model_dump_json(),
        device_data=command.device_data,
        failed_attempts=0,
        created_at=now,
        expires_at=expires_at,
        created_by_command=str(command.command_id),
        created_by_request=command.request_id,
    )


def opens_as(challenge: DeviceChallengeRow, command: OpenDeviceChallenge) -> bool:
    """Whether a challenge stored by ``command``'s id is what ``command`` opens."""
    transaction = command.transaction
    return (
        challenge.id,
        challenge.device_id,
        challenge.transaction_json,
        challenge.device_data,
    ) == (
        str(command.challenge_id),
        str(command.device_id),
        None if transaction is None else transaction.model_dump_json(),
        command.device_data,
    )


def added_key(
    command: AddDeviceKey,
    keys: Mapping[KeyPurpose, DeviceKeyRow],
    *,
    now: datetime,
    verifies: MessageCheck,
) -> DeviceKeyRow | Refused:
    """The key ``command`` adds to its (bound, visible) device, or why not."""
    addition = command.addition
    vouching = addition.device_signature
    signer = keys.get(vouching.signature_key_purpose)
    # The device signs the new key's hex as text: one spelling, lowercase (SPEC §8).
    message = addition.key.lower().encode("ascii")
    if signer is None or not verifies(signer.public_key, message, vouching.signature):
        return Refused(Reason.INVALID_SIGNATURE)
    if addition.key_purpose in keys:
        return Refused(Reason.KEY_PURPOSE_TAKEN)
    return DeviceKeyRow(
        id=str(command.key_id),
        device_id=str(command.device_id),
        key_purpose=addition.key_purpose.value,
        public_key=addition.key.lower(),
        created_at=now,
        signed_by_key_id=signer.id,
        created_by_command=str(command.command_id),
        created_by_request=command.request_id,
    )


def by_purpose(keys: list[DeviceKeyRow]) -> dict[KeyPurpose, DeviceKeyRow]:
    return {KeyPurpose(key.key_purpose): key for key in keys}


def same_key(key: DeviceKeyRow, command: AddDeviceKey) -> bool:
    """Whether a key stored by ``command``'s id is what ``command`` adds."""
    return (key.id, key.public_key, key.key_purpose) == (
        str(command.key_id),
        command.addition.key.lower(),
        command.addition.key_purpose.value,
    )
