"""How a command off the hot path is answered (the reply) and announced (its event), and
where announcements go: shared by :mod:`worker.binding` and :mod:`worker.signing`."""

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import JsonValue

from schemas.model import WireModel
from schemas.otp import OtpDelivery
from schemas.reasons import Reason
from schemas.replies import Reply
from telemetry.limits import LIMITED
from worker.decisions.persons import Limited

Clock = Callable[[], datetime]
# An event to publish: its Kafka key and its CloudEvent JSON.
Event = tuple[str, str]


class Outbox(Protocol):
    """Where decisions are announced (:class:`worker.outbox.KafkaOutbox`)."""

    async def event(self, key: str, event_json: str) -> Awaitable[object]:
        """Hand an event over; the result is awaited for its acknowledgement."""
        ...

    async def reply(self, reply: Reply, partition: int | None) -> Awaitable[object]: ...

    async def deliver_otp(self, delivery: OtpDelivery) -> None:
        """Returns once Kafka has the OTP."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a command is answered with (the reply) and announced with (its event, if any)."""

    outcome: Literal["ok", "rejected"]
    body: JsonValue = None
    reason: Reason | None = None
    event: Event | None = None
    # Announced with it: a person_locked event started by this command's failure.
    extra_events: tuple[Event, ...] = ()
    # With a limit's refusal: when to retry, when a person's lock ends.
    retry_after_seconds: int | None = None
    locked_until: datetime | None = None


def ok(body: WireModel | None, *, event: Event | None = None) -> Answer:
    payload: JsonValue = body.model_dump(mode="json") if body is not None else None
    return Answer("ok", body=payload, event=event)


def rejected(reason: Reason, *, extra_events: tuple[Event, ...] = ()) -> Answer:
    return Answer("rejected", reason=reason, extra_events=extra_events)


def limited(refusal: Limited) -> Answer:
    """A refusal by one of the person's limits (SPEC §9), with when to retry; counted in
    ``device_binding_limited_total``."""
    if refusal.limit is not None:
        LIMITED.labels(refusal.limit).inc()
    retry = refusal.retry_after
    return Answer(
        "rejected",
        reason=refusal.reason,
        # Rounded up: a client that waits as told is not refused again.
        retry_after_seconds=None if retry is None else max(1, math.ceil(retry.total_seconds())),
        locked_until=refusal.locked_until,
    )
