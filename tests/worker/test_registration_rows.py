"""What a registration stores, and when a command seen before is the same registration."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from schemas.commands import RegisterDevice
from schemas.devices import DeviceRegistration, KeyPurpose
from tests.support.worker import DeviceKey
from worker.decisions.registrations import registers_as, registration_rows

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
KEY = DeviceKey().public_hex


def command(**body: object) -> RegisterDevice:
    registration = {"person_id": "p-1", "key_type": "ecdsa-p256", "key": KEY, **body}
    return RegisterDevice(
        command_id=uuid.uuid4(),
        request_id="req-1",
        client_id="bank-1",
        issued_at=NOW,
        device_id=uuid.uuid4(),
        key_id=uuid.uuid4(),
        challenge_id=uuid.uuid4(),
        registration=DeviceRegistration.model_validate(registration),
    )


def test_a_registration_stores_a_pending_device_and_its_challenge() -> None:
    register = command(name="Pixel", key_purpose="restricted", device_data='{"os": "15"}')
    device, challenge = registration_rows(
        register, now=NOW, ttl=timedelta(minutes=5), digest=b"d" * 32, claim="lease-1"
    )
    assert (device.id, device.key_id) == (str(register.device_id), str(register.key_id))
    assert (device.client_id, device.person_id, device.name) == ("bank-1", "p-1", "Pixel")
    assert (device.status, device.key_purpose) == ("pending", KeyPurpose.RESTRICTED.value)
    assert device.created_by_command == str(register.command_id)
    assert (challenge.id, challenge.device_id) == (str(register.challenge_id), device.id)
    assert (challenge.status, challenge.failed_attempts) == ("pending", 0)
    assert challenge.otp_digest == b"d" * 32
    assert (challenge.otp_delivered, challenge.otp_delivery_claim) == (False, "lease-1")
    assert challenge.expires_at == NOW + timedelta(minutes=5)


def test_the_same_body_again_is_the_same_registration_and_another_is_not() -> None:
    first = command(name="Pixel")
    device, _ = registration_rows(
        first, now=NOW, ttl=timedelta(minutes=5), digest=b"d" * 32, claim="lease-1"
    )
    # The language and the OTP are not the registration: a retry may differ in them.
    assert registers_as(device, first.model_copy(update={"command_id": uuid.uuid4()}))
    assert registers_as(device, command(name="Pixel", language="de"))
    assert not registers_as(device, command(name="Another phone"))
    assert not registers_as(device, command(name="Pixel", person_id="p-2"))
    other_client = command(name="Pixel").model_copy(update={"client_id": "bank-2"})
    assert not registers_as(device, other_client)
