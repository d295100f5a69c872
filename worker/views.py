"""Stored rows as the HTTP bodies the API answers with."""

import uuid
from collections.abc import Sequence
from datetime import datetime

from schemas.challenges import ChallengeStatus, ChallengeView
from schemas.devices import (
    ChallengeSummary,
    DeviceRegistered,
    DeviceStatus,
    DeviceView,
    KeyPurpose,
)
from schemas.signing import (
    DeviceChallengeOpened,
    DeviceChallengeView,
    DeviceKeys,
    KeyView,
    Transaction,
)
from worker.decisions.attempts import attempts_remaining, effective_status
from worker.store import Binding
from worker.tables import DeviceChallengeRow, DeviceKeyRow, DeviceRow


def device_registered(binding: Binding) -> DeviceRegistered:
    return DeviceRegistered(
        id=uuid.UUID(binding.device.id),
        key_id=uuid.UUID(binding.device.key_id),
        challenge=ChallengeSummary(
            id=uuid.UUID(binding.challenge.id),
            created_at=binding.challenge.created_at,
            expires_at=binding.challenge.expires_at,
        ),
    )


def challenge_view(binding: Binding, now: datetime) -> ChallengeView:
    challenge = binding.challenge
    return ChallengeView(
        id=uuid.UUID(challenge.id),
        status=effective_status(ChallengeStatus(challenge.status), challenge.expires_at, now),
        device_id=uuid.UUID(binding.device.id),
        created_at=challenge.created_at,
        expires_at=challenge.expires_at,
        attempts_remaining=attempts_remaining(challenge.failed_attempts),
    )


def device_view(device: DeviceRow) -> DeviceView:
    return DeviceView(
        id=uuid.UUID(device.id),
        key_id=uuid.UUID(device.key_id),
        person_id=device.person_id,
        name=device.name,
        key_purpose=KeyPurpose(device.key_purpose),
        key=device.public_key,
        status=DeviceStatus(device.status),
        created_at=device.created_at,
        bound_at=device.bound_at,
    )


def device_challenge_opened(challenge: DeviceChallengeRow) -> DeviceChallengeOpened:
    return DeviceChallengeOpened(
        id=uuid.UUID(challenge.id),
        device_id=uuid.UUID(challenge.device_id),
        key_id=uuid.UUID(challenge.key_id),
        key_purpose=KeyPurpose(challenge.key_purpose),
        string_to_sign=challenge.string_to_sign,
        created_at=challenge.created_at,
        expires_at=challenge.expires_at,
    )


def device_challenge_view(challenge: DeviceChallengeRow, now: datetime) -> DeviceChallengeView:
    transaction = challenge.transaction_json
    return DeviceChallengeView(
        id=uuid.UUID(challenge.id),
        status=effective_status(ChallengeStatus(challenge.status), challenge.expires_at, now),
        device_id=uuid.UUID(challenge.device_id),
        key_id=uuid.UUID(challenge.key_id),
        key_purpose=KeyPurpose(challenge.key_purpose),
        string_to_sign=challenge.string_to_sign,
        transaction=None if transaction is None else Transaction.model_validate_json(transaction),
        created_at=challenge.created_at,
        expires_at=challenge.expires_at,
        attempts_remaining=attempts_remaining(challenge.failed_attempts),
    )


def device_keys(device_id: str, keys: Sequence[DeviceKeyRow]) -> DeviceKeys:
    return DeviceKeys(
        device_id=uuid.UUID(device_id),
        keys=[
            KeyView(
                key_id=uuid.UUID(key.id),
                key_purpose=KeyPurpose(key.key_purpose),
                created_at=key.created_at,
                used_at=key.used_at,
            )
            for key in keys
        ],
    )
