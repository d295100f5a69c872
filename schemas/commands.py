"""Commands the HTTP front publishes to ``mfa.device-binding.commands.v1`` (internal).

Every command names the request that caused it (``command_id``, unique per HTTP request, and
``request_id``, the caller's correlation id) and the API replica waiting for the answer
(``reply_to``). Ids of things to be created are chosen by the API, so a redelivered command
creates nothing twice and the Kafka key (the challenge id) is known before publishing.
"""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, TypeAdapter

from schemas.devices import DeviceRegistration, KeyPurpose
from schemas.fields import DeviceData, Identifier, SignatureHex
from schemas.model import WireModel
from schemas.signing import KeyAddition, Transaction


class CommandHeader(WireModel):
    command_id: UUID
    request_id: str
    client_id: str
    reply_to: str | None = None
    issued_at: datetime

    def subject(self) -> dict[str, str]:
        """The id of what the command is about, named (``challenge_id``, ``device_id``)."""
        return {}

    def log_fields(self) -> dict[str, str]:
        """The ids the command's log lines carry, in the API that sends it and the worker
        that handles it alike: never its values (a signature, a key, a person's data)."""
        return {
            "command_id": str(self.command_id),
            "request_id": self.request_id,
            **self.subject(),
        }


class _AboutChallenge(CommandHeader):
    challenge_id: UUID

    def subject(self) -> dict[str, str]:
        return {"challenge_id": str(self.challenge_id)}


class _AboutDevice(CommandHeader):
    device_id: UUID

    def subject(self) -> dict[str, str]:
        return {"device_id": str(self.device_id)}


class RegisterDevice(_AboutChallenge):
    type: Literal["register_device"] = "register_device"
    device_id: UUID
    key_id: UUID
    registration: DeviceRegistration


class VerifySignature(_AboutChallenge):
    type: Literal["verify_signature"] = "verify_signature"
    signature: SignatureHex
    device_data: DeviceData | None = None


class UnbindDevice(_AboutDevice):
    type: Literal["unbind_device"] = "unbind_device"


class GetChallenge(_AboutChallenge):
    type: Literal["get_challenge"] = "get_challenge"


class GetDevice(_AboutDevice):
    type: Literal["get_device"] = "get_device"


class ListDevices(CommandHeader):
    type: Literal["list_devices"] = "list_devices"
    person_id: Identifier


class OpenDeviceChallenge(_AboutChallenge):
    """Open a challenge for a bound device to sign (SPEC §8); the worker draws the nonce."""

    type: Literal["open_device_challenge"] = "open_device_challenge"
    device_id: UUID
    # None: the restricted key when the device holds one, else the unrestricted.
    key_purpose: KeyPurpose | None = None
    device_data: DeviceData | None = None
    transaction: Transaction | None = None


class VerifyDeviceSignature(_AboutChallenge):
    """A device's signature of a device challenge's ``string_to_sign``: decided in batches
    with the binding attempts, by the same rules."""

    type: Literal["verify_device_signature"] = "verify_device_signature"
    signature: SignatureHex
    device_data: DeviceData | None = None


class GetDeviceChallenge(_AboutChallenge):
    type: Literal["get_device_challenge"] = "get_device_challenge"


class ListDeviceKeys(_AboutDevice):
    type: Literal["list_device_keys"] = "list_device_keys"


class AddDeviceKey(_AboutDevice):
    type: Literal["add_device_key"] = "add_device_key"
    key_id: UUID
    addition: KeyAddition


# The signature attempts: the hot path, decided in batches (worker/attempts/).
AttemptCommand = VerifySignature | VerifyDeviceSignature
ATTEMPT_COMMANDS = (VerifySignature, VerifyDeviceSignature)

Command = Annotated[
    RegisterDevice
    | VerifySignature
    | UnbindDevice
    | GetChallenge
    | GetDevice
    | ListDevices
    | OpenDeviceChallenge
    | VerifyDeviceSignature
    | GetDeviceChallenge
    | ListDeviceKeys
    | AddDeviceKey,
    Field(discriminator="type"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def command_key(command: Command) -> bytes:
    """The Kafka key: commands about one challenge or device stay in order on one partition."""
    match command:
        case (
            RegisterDevice()
            | VerifySignature()
            | GetChallenge()
            | OpenDeviceChallenge()
            | VerifyDeviceSignature()
            | GetDeviceChallenge()
        ):
            return str(command.challenge_id).encode()
        case UnbindDevice() | GetDevice() | ListDeviceKeys() | AddDeviceKey():
            return str(command.device_id).encode()
        case ListDevices():
            return command.person_id.encode()
