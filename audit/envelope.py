"""What the audit consumer needs of a message: a CloudEvent's id, type and subject.

Deliberately lenient beyond that: the trail keeps events exactly as published, fields this
version does not know included, so a newer producer never makes the auditor drop anything.
"""

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.chain import canonical_event


class Unreadable(Exception):
    """The message is not a CloudEvent; ``detail`` says why without quoting its content."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    specversion: str
    id: str = Field(min_length=1, max_length=255)
    source: str
    type: str = Field(min_length=1, max_length=255)
    subject: str | None = Field(default=None, max_length=255)


@dataclass(frozen=True)
class ReadEvent:
    event_id: str
    event_type: str
    subject: str | None
    canonical: str


def read_event(value: bytes | None) -> ReadEvent:
    if value is None:
        raise Unreadable("no value (tombstone)")
    try:
        document: Any = json.loads(value)
    except ValueError:
        raise Unreadable("not JSON") from None
    if not isinstance(document, dict):
        raise Unreadable("not a JSON object")
    try:
        envelope = _Envelope.model_validate(document)
    except ValidationError as error:
        fields = sorted({str(issue["loc"][0]) for issue in error.errors() if issue["loc"]})
        raise Unreadable(f"not a CloudEvent: missing or invalid {', '.join(fields)}") from None
    return ReadEvent(
        event_id=envelope.id,
        event_type=envelope.type,
        subject=envelope.subject,
        canonical=canonical_event(document),
    )
