"""Stored rows as the HTTP bodies the API answers with."""

import uuid
from datetime import datetime

from schemas.challenges import ChallengeStatus, ChallengeView
from schemas.devices import (
    ChallengeSummary,
    DeviceRegistered,
    DeviceStatus,
    DeviceView,
    KeyPurpose,
)
from worker.decisions.attempts import attempts_remaining, effective_status
from worker.store import Binding
from worker.tables import DeviceRow


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
