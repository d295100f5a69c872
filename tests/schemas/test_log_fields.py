"""The ids a command's log lines carry, and nothing of its values."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from schemas.commands import ListDevices, UnbindDevice, VerifySignature

HEADER: dict[str, Any] = {
    "command_id": uuid.UUID(int=1),
    "request_id": "req-1",
    "client_id": "bank-1",
    "issued_at": datetime(2026, 11, 29, tzinfo=UTC),
}


def test_a_signature_command_is_logged_by_its_ids_only() -> None:
    signature = "3045022100" + "ab" * 32 + "0220" + "cd" * 32
    command = VerifySignature(**HEADER, challenge_id=uuid.UUID(int=2), signature=signature)
    fields = command.log_fields()
    assert fields == {
        "command_id": str(uuid.UUID(int=1)),
        "request_id": "req-1",
        "challenge_id": str(uuid.UUID(int=2)),
    }
    assert signature not in str(fields)


def test_device_commands_name_the_device_and_lists_no_person() -> None:
    unbind = UnbindDevice(**HEADER, device_id=uuid.UUID(int=3))
    assert unbind.log_fields()["device_id"] == str(uuid.UUID(int=3))
    assert "challenge_id" not in unbind.log_fields()
    listing = ListDevices(**HEADER, person_id="person-1")
    assert "person-1" not in str(listing.log_fields())
