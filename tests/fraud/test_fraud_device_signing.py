"""Device signing attempts (SPEC §8) in the fraud signals: a ``device_signature_rejected`` is
counted as a ``signature_rejected`` is, for the same reasons, keyed by the same person and
device, in the same windows; a ``device_signature_verified`` is read and never counted, as a
``signature_verified`` is."""

from __future__ import annotations

import json
from uuid import UUID

import pytest
from aiokafka import AIOKafkaProducer
from pydantic import BaseModel

from fraud.attempts import AttemptEvent
from fraud.records import ReadEvent, read_event
from fraud.windows import RejectionWindows
from harness.topics import create_topics
from schemas.devices import KeyPurpose
from schemas.events import CloudEvent, DeviceSignatureAttempt, EventType
from schemas.reasons import SIGNATURE_REJECTION_REASONS, Reason
from schemas.signals import ReasonCount, Scope, SuspiciousActivityEvent
from tests.fraud.test_fraud_consumer import PARTITIONS, Bench, device
from tests.fraud.test_fraud_consumer import attempt as recent_attempt
from tests.fraud.test_fraud_windows import DEVICE_A, DEVICE_B, PERSON, attempt, windows
from tests.support.sample_events import (
    as_device_attempt,
    device_attempt_event,
    device_challenge_created_event,
    key_added_event,
)

pytestmark = pytest.mark.audit


def device_attempt(
    seconds: float,
    *,
    person: str | None = PERSON,
    device: UUID | None = DEVICE_A,
    reason: Reason | None = Reason.INVALID_SIGNATURE,
) -> CloudEvent[DeviceSignatureAttempt]:
    """An attempt as test_fraud_windows makes one, on a device signing challenge."""
    return as_device_attempt(attempt(seconds, person=person, device=device, reason=reason))


def feed(target: RejectionWindows, *events: AttemptEvent) -> list[SuspiciousActivityEvent]:
    return [alert for event in events for alert in target.observe(event)]


def read(event: BaseModel) -> ReadEvent | None:
    return read_event(event.model_dump_json().encode(), topic="t", partition=0, offset=0)


# Reading them off the topic.


def test_a_device_signature_rejection_is_read_with_its_key_purpose() -> None:
    event = read(device_attempt_event(1))

    assert event is not None
    assert isinstance(event.data, DeviceSignatureAttempt)
    assert event.type is EventType.DEVICE_SIGNATURE_REJECTED
    assert (event.data.reason, event.data.key_purpose) == (
        Reason.INVALID_SIGNATURE,
        KeyPurpose.RESTRICTED,
    )


def test_a_device_signature_verified_is_read_as_a_signature_verified_is() -> None:
    binding = attempt(0, reason=None)

    assert read(binding) == binding
    event = read(as_device_attempt(binding))

    assert event is not None
    assert event.type is EventType.DEVICE_SIGNATURE_VERIFIED
    assert event.data == as_device_attempt(binding).data


def test_the_other_device_signing_events_are_skipped() -> None:
    assert read(device_challenge_created_event(1)) is None
    assert read(key_added_event(1)) is None


def test_a_malformed_device_attempt_is_skipped() -> None:
    document = device_attempt_event(1).model_dump(mode="json")
    document["data"]["key_purpose"] = "master"

    assert read_event(json.dumps(document).encode(), topic="t", partition=0, offset=0) is None


# Counting them.


def test_device_signature_rejections_reach_the_threshold() -> None:
    target = windows(person=3)
    events = [device_attempt(s) for s in (0, 10, 20)]

    assert feed(target, *events[:2]) == []
    [alert] = target.observe(events[2])

    assert alert.data.scope is Scope.PERSON
    assert alert.subject == PERSON
    assert alert.data.event_ids == [event.id for event in events]
    assert alert.data.reasons == [ReasonCount(reason=Reason.INVALID_SIGNATURE, count=3)]


def test_binding_and_device_rejections_count_in_the_same_windows() -> None:
    target = windows(person=3, device=2)
    binding = attempt(0, device=DEVICE_A)
    signing = [device_attempt(10, device=DEVICE_B), device_attempt(20, device=DEVICE_A)]

    alerts = feed(target, binding, *signing)

    by_scope = {alert.data.scope: alert.data for alert in alerts}
    assert by_scope.keys() == {Scope.PERSON, Scope.DEVICE}
    assert by_scope[Scope.PERSON].event_ids == [binding.id, signing[0].id, signing[1].id]
    assert by_scope[Scope.PERSON].devices == 2
    assert by_scope[Scope.DEVICE].device_id == DEVICE_A
    assert by_scope[Scope.DEVICE].event_ids == [binding.id, signing[1].id]


@pytest.mark.parametrize(
    "reason", [*sorted(SIGNATURE_REJECTION_REASONS), None], ids=lambda r: r or "verified"
)
def test_a_device_attempt_counts_exactly_as_the_same_binding_attempt(
    reason: Reason | None,
) -> None:
    """Counted or not (reason, verified, unknown challenge), and the same alerts."""
    # An unknown challenge: nobody to name, as the worker reports it.
    person, device = (None, None) if reason is Reason.NOT_FOUND else (PERSON, DEVICE_A)
    events = [attempt(s, reason=reason, person=person, device=device) for s in (0, 1)]
    binding, signing = windows(person=2, device=2), windows(person=2, device=2)

    binding_alerts = feed(binding, *events)
    signing_alerts = feed(signing, *(as_device_attempt(event) for event in events))

    assert [alert.model_dump() for alert in signing_alerts] == [
        alert.model_dump() for alert in binding_alerts
    ]
    assert len(signing) == len(binding)
    counted = reason in {Reason.INVALID_SIGNATURE, Reason.CHALLENGE_LOCKED}
    assert bool(signing_alerts) is counted


def test_a_redelivered_device_rejection_is_not_counted_twice() -> None:
    target = windows(person=2)
    first = device_attempt(0)

    assert feed(target, first, first, first.model_copy()) == []
    [alert] = target.observe(device_attempt(10))

    assert alert.data.event_ids[0] == first.id


# Through the consumer, on a real broker.


async def publish(bench: Bench, *events: BaseModel) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bench.bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            subject = event.model_dump()["subject"]
            await producer.send_and_wait(
                bench.settings.events_topic, event.model_dump_json().encode(), key=subject.encode()
            )
    finally:
        await producer.stop()


@pytest.mark.kafka
async def test_the_consumer_counts_device_rejections_across_a_restart(
    kafka_bootstrap: str,
) -> None:
    bench = Bench(kafka_bootstrap)  # person threshold 3, device threshold 2
    await create_topics(kafka_bootstrap, bench.settings.events_topic, partitions=PARTITIONS)
    d1, d2 = device(), device()
    r1 = as_device_attempt(recent_attempt(0, device_id=d1))
    r2 = recent_attempt(10, device_id=d2)  # binding

    async with bench.running():
        await publish(
            bench,
            key_added_event(1),
            device_challenge_created_event(1),
            as_device_attempt(recent_attempt(5, device_id=d1, reason=None)),  # verified
            r1,
            r2,
        )
        await bench.caught_up()
        assert await bench.alerts() == []

    # While it is down: only the warm-up knows r1 and r2, committed before the restart.
    r3 = as_device_attempt(recent_attempt(20, device_id=d1))
    await publish(bench, r3)
    async with bench.running():
        await bench.caught_up()
        alerts = [alert.event.data for alert in await bench.alerts()]

    assert sorted(alert.scope for alert in alerts) == [Scope.DEVICE, Scope.PERSON]
    by_scope = {alert.scope: alert for alert in alerts}
    assert by_scope[Scope.PERSON].event_ids == [r1.id, r2.id, r3.id]
    assert (by_scope[Scope.DEVICE].device_id, by_scope[Scope.DEVICE].event_ids) == (
        d1,
        [r1.id, r3.id],
    )
