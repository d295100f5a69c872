"""Persons locked (SPEC §9) in the fraud signals: each ``person_locked`` event raises one
``person_lock_alert`` naming the person, the client and when the lock ends; a copy of the
event (redelivered, or announced again by the worker) raises nothing more while the lock
lasts, and the same alert, same id, after it."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from contracts.documents import load_examples
from fraud.locks import LockAlerts
from fraud.records import read_event
from harness.topics import create_topics
from schemas.events import PersonLockedEvent
from schemas.signals import PERSON_LOCK_ALERT, SIGNALS_SOURCE, PersonLockAlertEvent
from tests.fraud.test_fraud_consumer import PARTITIONS, PERSON, T0, Bench
from tests.fraud.test_fraud_consumer import attempt as recent_attempt
from tests.fraud.test_fraud_device_signing import publish
from tests.support.sample_events import person_locked_event

pytestmark = pytest.mark.audit


def feed(target: LockAlerts, *events: PersonLockedEvent) -> list[PersonLockAlertEvent]:
    return [alert for event in events for alert in target.observe(event)]


def test_a_lock_raises_one_alert_naming_the_person_the_client_and_the_lock_end() -> None:
    lock = person_locked_event(1)

    [alert] = LockAlerts().observe(lock)

    assert (alert.type, alert.source) == (PERSON_LOCK_ALERT, SIGNALS_SOURCE)
    assert alert.subject == lock.subject == "bank-app-1/person-1"
    assert (alert.data.person_id, alert.data.client_id) == ("person-1", "bank-app-1")
    assert alert.data.locked_until == lock.data.locked_until
    assert alert.data.locked_at == alert.time == lock.data.locked_at
    assert alert.data.consecutive_failures == 5
    assert (alert.data.challenge_id, alert.data.device_id) == (
        lock.data.challenge_id,
        lock.data.device_id,
    )
    assert alert.data.event_id == lock.id
    # Made from the lock's id alone: a restarted consumer names it the same.
    assert LockAlerts().observe(lock) == [alert]


def test_the_alert_is_the_one_the_v1_example_shows() -> None:
    examples = load_examples()
    lock = PersonLockedEvent.model_validate(examples["person_locked"])

    [alert] = LockAlerts().observe(lock)

    published = alert.model_dump(mode="json")
    # The example's id is a fixed one, not made from the lock's.
    assert {**published, "id": None} == {**examples["person_lock_alert"], "id": None}


def test_a_lock_seen_again_raises_nothing_while_it_lasts() -> None:
    target = LockAlerts()
    lock = person_locked_event(1)

    assert len(feed(target, lock, lock.model_copy(), lock)) == 1
    assert len(target) == 1


def test_a_lock_is_forgotten_once_it_has_ended_and_then_alerts_with_the_same_id() -> None:
    target = LockAlerts()
    lock = person_locked_event(1)
    [alert] = target.observe(lock)
    end = lock.data.locked_until

    # Other persons' locks tell the time: a second before the first lock ends, then as it does.
    feed(target, person_locked_event(2, person_id="person-2", locked_at=end - timedelta(seconds=1)))
    assert target.observe(lock) == []
    feed(target, person_locked_event(3, person_id="person-3", locked_at=end))

    assert len(target) == 2
    assert target.observe(lock) == [alert]


def test_each_lock_of_a_person_raises_its_own_alert() -> None:
    first = person_locked_event(1)
    second = person_locked_event(
        2, locked_at=first.data.locked_until + timedelta(minutes=3), lock=timedelta(hours=1)
    )

    alerts = feed(LockAlerts(), first, second)

    assert [alert.data.event_id for alert in alerts] == [first.id, second.id]
    assert alerts[0].id != alerts[1].id
    assert alerts[1].data.locked_until - alerts[1].data.locked_at == timedelta(hours=1)


def test_two_clients_locking_the_same_person_id_raise_two_alerts() -> None:
    """SPEC §9 counts per person per client: two clients' person-1 are two persons."""
    ours, theirs = person_locked_event(1), person_locked_event(1, client_id="bank-app-2")

    alerts = feed(LockAlerts(), ours, theirs)

    assert [alert.subject for alert in alerts] == ["bank-app-1/person-1", "bank-app-2/person-1"]
    assert [alert.data.client_id for alert in alerts] == ["bank-app-1", "bank-app-2"]
    assert alerts[0].id != alerts[1].id


def test_a_lock_by_a_key_addition_names_the_device_and_no_challenge() -> None:
    lock = person_locked_event(1, by_key_addition=True)

    [alert] = LockAlerts().observe(lock)

    assert alert.data.challenge_id is None
    assert alert.data.device_id == lock.data.device_id


# Reading them off the topic.


def test_a_lock_is_read_and_fields_added_later_within_v1_are_ignored() -> None:
    document = person_locked_event(1).model_dump(mode="json")
    document["data"]["failures_by_channel"] = {"binding": 2, "device_signing": 3}

    event = read_event(json.dumps(document).encode(), topic="t", partition=0, offset=0)

    assert event == person_locked_event(1)


def test_a_malformed_lock_is_skipped() -> None:
    document = person_locked_event(1).model_dump(mode="json")
    document["data"]["locked_until"] = "in a quarter of an hour"

    assert read_event(json.dumps(document).encode(), topic="t", partition=0, offset=0) is None


# Through the consumer, on a real broker.


@pytest.mark.kafka
async def test_the_consumer_alerts_once_per_lock_across_a_republication_and_a_restart(
    kafka_bootstrap: str,
) -> None:
    bench = Bench(kafka_bootstrap)  # person threshold 3
    await create_topics(kafka_bootstrap, bench.settings.events_topic, partitions=PARTITIONS)
    lock = person_locked_event(
        1, person_id=PERSON, client_id="bank-1", locked_at=T0 + timedelta(seconds=12)
    )
    other_client = person_locked_event(1, person_id=PERSON, client_id="bank-2", locked_at=T0)
    rejections = [recent_attempt(s, device_id=None) for s in (0, 10)]

    async with bench.running():
        # Two rejections and a lock: the lock is no rejection, the person stays below 3.
        await publish(bench, *rejections, lock, other_client, lock)
        await bench.caught_up()
        signals = await bench.signals()

    assert await bench.alerts() == []
    assert {key for key, _ in signals} == {PERSON.encode()}
    alerts = [PersonLockAlertEvent.model_validate_json(value) for _, value in signals]
    assert sorted((alert.subject, alert.data.locked_until) for alert in alerts) == [
        (f"bank-1/{PERSON}", lock.data.locked_until),
        (f"bank-2/{PERSON}", other_client.data.locked_until),
    ]
    assert {alert.data.event_id for alert in alerts} == {lock.id, other_client.id}

    # While it is down the worker announces the lock again, same id: only the warm-up knows
    # it was alerted on, before the committed offsets.
    await publish(bench, lock)
    async with bench.running():
        await bench.caught_up()
        assert await bench.signals() == signals
