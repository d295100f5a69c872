"""A worker's answer to one command, on the internal replies topic."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import JsonValue

from schemas.model import WireModel
from schemas.reasons import Reason


class Reply(WireModel):
    command_id: UUID
    reply_to: str
    outcome: Literal["ok", "rejected"]
    # With "ok": the HTTP body to answer with (None for 204). With "rejected": None.
    body: JsonValue = None
    # With "rejected": why. The API words the error body from it (and attempts_remaining).
    reason: Reason | None = None
    attempts_remaining: int | None = None
    # With a limit's refusal (SPEC §9): when to try again, and when a person's lock ends.
    retry_after_seconds: int | None = None
    locked_until: datetime | None = None
