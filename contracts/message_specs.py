"""What describes one kind of message in the AsyncAPI document: its key, headers, payload
model and channel (:mod:`contracts.messages` holds the catalogue of them)."""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from contracts.channels import Channel

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"


@dataclass(frozen=True)
class MessageKey:
    """The Kafka key: UTF-8 text, the value at ``payload_pointer`` in the payload."""

    # A JSON pointer into the payload; None when the key is not taken from it (the DLQ).
    payload_pointer: str | None
    description: str
    is_uuid: bool = True

    def schema(self) -> dict[str, Any]:
        source = (
            f" The value at {self.payload_pointer} in the payload." if self.payload_pointer else ""
        )
        schema: dict[str, Any] = {"type": "string", "description": self.description + source}
        if self.is_uuid:
            schema["format"] = "uuid"
        return schema


@dataclass(frozen=True)
class Header:
    name: str
    description: str
    # The only value the header ever has, if it has just one.
    const: str | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "description": self.description}
        if self.const is not None:
            schema["const"] = self.const
        return schema


@dataclass(frozen=True)
class MessageSpec:
    """One kind of message on one channel: its payload model, key and headers."""

    name: str
    channel: Channel
    summary: str
    # None: the payload is opaque bytes (a dead letter may not even be JSON).
    payload: type[BaseModel] | None
    key: MessageKey
    content_type: str = JSON
    headers: tuple[Header, ...] = ()
