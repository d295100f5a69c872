"""Device registration (``POST /v1/mfa/devices``): what a register command stores, and whether
a command seen before is the same registration again.

A registration creates a pending device and its binding challenge, with the digest of an OTP
the caller drew and the lease under which it delivers it; the person's limit of bound
devices is checked by the store in the same transaction as the insert. A command id already
registered is a redelivery, or a retry under the same ``Idempotency-Key``: the same body
answers as the first time, another body is refused (``idempotency_key_reused``).
"""

from datetime import datetime, timedelta

from schemas.challenges import ChallengeStatus
from schemas.commands import RegisterDevice
from schemas.devices import DeviceStatus
from worker.tables import ChallengeRow, DeviceKeyRow, DeviceRow


def registration_rows(
    command: RegisterDevice, *, now: datetime, ttl: timedelta, digest: bytes, claim: str
) -> tuple[DeviceRow, ChallengeRow]:
    """The pending device and challenge ``command`` stores: the challenge holds ``digest``
    (SHA-256 of the OTP, sealed by the caller) and the delivery lease ``claim`` of the
    worker that drew it."""
    body = command.registration
    device = DeviceRow(
        id=str(command.device_id),
        key_id=str(command.key_id),
        client_id=command.client_id,
        person_id=body.person_id,
        name=body.name,
        key_purpose=body.key_purpose.value,
        public_key=body.key,
        status=DeviceStatus.PENDING.value,
        device_data=body.device_data,
        created_at=now,
        created_by_command=str(command.command_id),
        created_by_request=command.request_id,
    )
    challenge = ChallengeRow(
        id=str(command.challenge_id),
        device_id=device.id,
        status=ChallengeStatus.PENDING.value,
        otp_digest=digest,
        otp_delivered=False,
        # This worker delivers the OTP; the lease keeps another from replacing it.
        otp_delivery_claim=claim,
        otp_delivery_claimed_at=now,
        failed_attempts=0,
        created_at=now,
        expires_at=now + ttl,
    )
    return device, challenge


def binding_key(device: DeviceRow) -> DeviceKeyRow:
    """The device's first key, the one its binding challenge is signed with (SPEC §8)."""
    return DeviceKeyRow(
        id=device.key_id,
        device_id=device.id,
        key_purpose=device.key_purpose,
        public_key=device.public_key,
        created_at=device.created_at,
        created_by_command=device.created_by_command,
        created_by_request=device.created_by_request,
    )


def registers_as(device: DeviceRow, command: RegisterDevice) -> bool:
    """Whether ``device`` is what ``command`` registers (language and OTP aside)."""
    body = command.registration
    return (
        device.client_id,
        device.person_id,
        device.public_key,
        device.key_purpose,
        device.name,
        device.device_data,
    ) == (
        command.client_id,
        body.person_id,
        body.key,
        body.key_purpose.value,
        body.name,
        body.device_data,
    )
