"""A gateway that publishes nothing, and helpers that build a worker's replies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue

from schemas.commands import (
    AddDeviceKey,
    Command,
    GetChallenge,
    GetDevice,
    GetDeviceChallenge,
    ListDeviceKeys,
    ListDevices,
    OpenDeviceChallenge,
    RegisterDevice,
    UnbindDevice,
    VerifyDeviceSignature,
    VerifySignature,
)
from schemas.reasons import Reason
from schemas.replies import Reply

Script = Callable[[Command], Reply]


def ok(command: Command, body: JsonValue = None) -> Reply:
    return Reply(
        command_id=command.command_id,
        reply_to=command.reply_to or "",
        outcome="ok",
        body=body,
    )


def rejected(
    command: Command,
    reason: Reason,
    *,
    attempts_remaining: int | None = None,
) -> Reply:
    return Reply(
        command_id=command.command_id,
        reply_to=command.reply_to or "",
        outcome="rejected",
        reason=reason,
        attempts_remaining=attempts_remaining,
    )


_CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def registered_body(command: RegisterDevice) -> dict[str, Any]:
    return {
        "id": str(command.device_id),
        "key_id": str(command.key_id),
        "challenge": {
            "id": str(command.challenge_id),
            "type": "signature",
            "created_at": _CREATED.isoformat(),
            "expires_at": (_CREATED + timedelta(minutes=5)).isoformat(),
        },
    }


def challenge_body(command: GetChallenge) -> dict[str, Any]:
    return {
        "id": str(command.challenge_id),
        "type": "signature",
        "status": "pending",
        "device_id": "6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21",
        "created_at": _CREATED.isoformat(),
        "expires_at": (_CREATED + timedelta(minutes=5)).isoformat(),
        "attempts_remaining": 5,
    }


def device_body(command: GetDevice) -> dict[str, Any]:
    return {
        "id": str(command.device_id),
        "key_id": "0e0c1b7a-4a8c-4a5e-8f7e-2d1c3b4a5f60",
        "person_id": "person-1",
        "name": "Phone",
        "key_type": "ecdsa-p256",
        "key_purpose": "unrestricted",
        "key": "04" + "ab" * 64,
        "status": "bound",
        "created_at": _CREATED.isoformat(),
        "bound_at": (_CREATED + timedelta(minutes=1)).isoformat(),
    }


def device_challenge_body(command: OpenDeviceChallenge | GetDeviceChallenge) -> dict[str, Any]:
    return {
        "id": str(command.challenge_id),
        "type": "device",
        "device_id": "6f1d8f3e-52c9-4a8e-9a57-0d5b8a3f4c21",
        "key_id": "0e0c1b7a-4a8c-4a5e-8f7e-2d1c3b4a5f60",
        "key_purpose": "unrestricted",
        "string_to_sign": "{}",
        "created_at": _CREATED.isoformat(),
        "expires_at": (_CREATED + timedelta(minutes=5)).isoformat(),
    }


def succeed(command: Command) -> Reply:
    """What a worker answers when everything goes well."""
    match command:
        case RegisterDevice():
            return ok(command, registered_body(command))
        case GetChallenge():
            return ok(command, challenge_body(command))
        case GetDevice():
            return ok(command, device_body(command))
        case ListDevices():
            return ok(command, {"data": []})
        case OpenDeviceChallenge():
            return ok(command, device_challenge_body(command))
        case GetDeviceChallenge():
            body = device_challenge_body(command)
            return ok(
                command, body | {"status": "pending", "transaction": None, "attempts_remaining": 5}
            )
        case ListDeviceKeys():
            return ok(command, {"device_id": str(command.device_id), "keys": []})
        case AddDeviceKey():
            return ok(command, {"id": str(command.key_id)})
        case VerifySignature() | VerifyDeviceSignature() | UnbindDevice():
            return ok(command)


class FakeGateway:
    """Records each command instead of publishing it and answers with ``script``."""

    instance_id = "api-fake"

    def __init__(self) -> None:
        self.ready = True
        self.sent: list[Command] = []
        self.script: Script = succeed
        self.error: Exception | None = None

    async def reachable(self) -> bool:
        return self.ready

    async def send(self, command: Command) -> Reply:
        self.sent.append(command)
        if self.error is not None:
            raise self.error
        return self.script(command)
