"""The fraud signals' sliding windows, without Kafka: what is counted, and when it alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from pydantic import ValidationError

from fraud.settings import FraudSettings
from fraud.windows import RejectionWindows
from schemas.events import CloudEvent, EventType, SignatureAttempt
from schemas.reasons import Reason
from schemas.signals import ReasonCount, Scope, SuspiciousActivityEvent

pytestmark = pytest.mark.audit

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PERSON = "person-1"
DEVICE_A = UUID("00000000-0000-4000-8000-00000000000a")
DEVICE_B = UUID("00000000-0000-4000-8000-00000000000b")
DEVICE_C = UUID("00000000-0000-4000-8000-00000000000c")
SIGNATURE = "3045" + "ab" * 67  # hex of DER length; never expected in an alert


def attempt(
    seconds: float,
    *,
    person: str | None = PERSON,
    device: UUID | None = DEVICE_A,
    reason: Reason | None = Reason.INVALID_SIGNATURE,
    event_id: str | None = None,
    client_id: str = "bank-1",
) -> CloudEvent[SignatureAttempt]:
    """One attempt event ``seconds`` after T0; ``reason`` None means it verified."""
    decided = T0 + timedelta(seconds=seconds)
    return CloudEvent[SignatureAttempt](
        id=event_id or str(uuid.uuid4()),
        type=EventType.SIGNATURE_REJECTED if reason else EventType.SIGNATURE_VERIFIED,
        subject=str(uuid.uuid4()),
        time=decided,
        data=SignatureAttempt(
            challenge_id=uuid.uuid4(),
            device_id=device,
            key_id=uuid.uuid4() if device else None,
            person_id=person,
            client_id=client_id,
            outcome="rejected" if reason else "verified",
            reason=reason,
            attempt=1,
            attempts_remaining=4,
            device_data="model=Pixel 9; os=Android 15",
            signature=SIGNATURE,
            request_id=f"req-{uuid.uuid4().hex[:8]}",
            received_at=decided - timedelta(milliseconds=5),
            decided_at=decided,
        ),
    )


def windows(
    *,
    person: int = 3,
    device: int = 100,
    window: float = 300,
    reasons: frozenset[Reason] = frozenset({Reason.INVALID_SIGNATURE, Reason.CHALLENGE_LOCKED}),
    lateness: float = 60,
) -> RejectionWindows:
    return RejectionWindows(
        window=timedelta(seconds=window),
        person_threshold=person,
        device_threshold=device,
        reasons=reasons,
        lateness=timedelta(seconds=lateness),
    )


def feed(
    target: RejectionWindows, *events: CloudEvent[SignatureAttempt]
) -> list[SuspiciousActivityEvent]:
    return [alert for event in events for alert in target.observe(event)]


def test_one_alert_when_the_threshold_is_reached() -> None:
    target = windows(person=3)
    first = attempt(0, device=DEVICE_A, client_id="bank-1")
    second = attempt(10, device=DEVICE_B, reason=Reason.CHALLENGE_LOCKED, client_id="bank-2")
    third = attempt(20, device=DEVICE_A, client_id="bank-1")

    assert feed(target, first, second) == []
    [alert] = target.observe(third)

    assert alert.type == "mfa.device_binding.suspicious_activity"
    assert alert.source == "/mfa/device-binding/fraud-signals"
    assert alert.subject == PERSON
    assert alert.time == third.data.decided_at
    assert UUID(alert.id).version == 5
    data = alert.data
    assert data.scope is Scope.PERSON
    assert (data.person_id, data.device_id) == (PERSON, None)
    assert (data.rejections, data.threshold, data.window_seconds) == (3, 3, 300)
    assert data.event_ids == [first.id, second.id, third.id]
    assert data.reasons == [
        ReasonCount(reason=Reason.CHALLENGE_LOCKED, count=1),
        ReasonCount(reason=Reason.INVALID_SIGNATURE, count=2),
    ]
    assert data.client_ids == ["bank-1", "bank-2"]
    assert data.devices == 2
    assert data.first_rejection_at == first.data.decided_at
    assert data.last_rejection_at == third.data.decided_at


def test_later_rejections_within_the_window_raise_nothing_more() -> None:
    target = windows(person=3)
    assert len(feed(target, *(attempt(s) for s in (0, 10, 20)))) == 1

    assert feed(target, *(attempt(s) for s in (30, 40, 50, 299))) == []


def test_key_rearms_once_the_count_slid_below_the_threshold() -> None:
    target = windows(person=3)
    assert len(feed(target, *(attempt(s) for s in (0, 10, 20, 30)))) == 1

    # At 400 everything before 100 has slid out: the count fell to 0 and the key re-armed.
    later = [attempt(s) for s in (400, 410, 420)]
    assert feed(target, *later[:2]) == []
    [alert] = target.observe(later[2])

    assert alert.data.event_ids == [event.id for event in later]
    assert alert.data.first_rejection_at == T0 + timedelta(seconds=400)


def test_sliding_without_falling_below_the_threshold_does_not_rearm() -> None:
    target = windows(person=3)
    assert len(feed(target, *(attempt(s) for s in (0, 10, 20, 30)))) == 1

    # At 305 the rejection at 0 is out, but 10, 20 and 30 still make 3: no new crossing.
    assert target.observe(attempt(305)) == []


def test_a_drop_between_two_rejections_rearms_the_key() -> None:
    target = windows(person=3)
    assert len(feed(target, *(attempt(s) for s in (0, 10, 20)))) == 1

    # At 300 the rejection at 0 slid out (2 left); the one at 305 makes 3 again.
    [alert] = target.observe(attempt(305))

    assert alert.data.first_rejection_at == T0 + timedelta(seconds=10)


def test_person_threshold_across_devices_and_device_threshold_per_device() -> None:
    target = windows(person=3, device=2)
    spread = [attempt(0, device=DEVICE_A), attempt(1, device=DEVICE_B), attempt(2, device=DEVICE_C)]

    [person_alert] = feed(target, *spread)

    assert person_alert.data.scope is Scope.PERSON
    assert person_alert.data.devices == 3

    # A second rejection on device A: that device reaches 2; the person, already alerted,
    # stays quiet at 4.
    again = attempt(3, device=DEVICE_A)
    [device_alert] = target.observe(again)

    assert device_alert.data.scope is Scope.DEVICE
    assert device_alert.subject == str(DEVICE_A)
    assert (device_alert.data.person_id, device_alert.data.device_id) == (PERSON, DEVICE_A)
    assert device_alert.data.event_ids == [spread[0].id, again.id]
    assert device_alert.data.devices == 1
    assert device_alert.id != person_alert.id


def test_device_and_person_can_cross_on_the_same_rejection() -> None:
    target = windows(person=2, device=2)

    alerts = feed(target, attempt(0), attempt(1))

    assert sorted(alert.data.scope for alert in alerts) == [Scope.DEVICE, Scope.PERSON]
    assert len({alert.id for alert in alerts}) == 2


def test_other_reasons_verified_and_unattributable_attempts_are_not_counted() -> None:
    target = windows(person=2, device=2)
    ignored = [
        attempt(0, reason=Reason.CHALLENGE_EXPIRED),
        attempt(1, reason=Reason.CHALLENGE_ALREADY_VERIFIED),
        attempt(2, reason=None),  # verified
        attempt(3, reason=Reason.NOT_FOUND, person=None, device=None),
        # Invalid signatures nobody can be named for still count for no one.
        attempt(4, person=None, device=None),
        attempt(4.5, person=None, device=None),
    ]
    assert feed(target, *ignored) == []

    counted = [attempt(5), attempt(6)]
    alerts = feed(target, *counted)

    assert {tuple(alert.data.event_ids) for alert in alerts} == {(counted[0].id, counted[1].id)}


def test_the_counted_reasons_are_configurable() -> None:
    target = windows(person=2, reasons=frozenset({Reason.CHALLENGE_EXPIRED}))

    assert feed(target, attempt(0), attempt(1)) == []  # invalid_signature: not counted
    [alert] = feed(
        target,
        attempt(2, reason=Reason.CHALLENGE_EXPIRED),
        attempt(3, reason=Reason.CHALLENGE_EXPIRED),
    )

    assert alert.data.reasons == [ReasonCount(reason=Reason.CHALLENGE_EXPIRED, count=2)]


def test_a_redelivered_event_is_not_counted_twice() -> None:
    target = windows(person=2)
    first = attempt(0)

    assert feed(target, first, first, first.model_copy()) == []
    second = attempt(10)
    [alert] = target.observe(second)

    assert alert.data.event_ids == [first.id, second.id]


def test_out_of_order_events_within_the_window_are_counted_in_event_order() -> None:
    target = windows(person=3)
    newer, older, newest = attempt(100), attempt(50), attempt(120)

    [alert] = feed(target, newer, older, newest)

    assert alert.data.event_ids == [older.id, newer.id, newest.id]
    assert alert.data.first_rejection_at == older.data.decided_at
    assert alert.data.last_rejection_at == newest.data.decided_at


def test_an_event_older_than_its_keys_window_is_not_counted() -> None:
    target = windows(person=2)
    recent = attempt(400)

    # 50 is more than a window before 400, the newest time of this person.
    assert feed(target, recent, attempt(50)) == []
    closer = attempt(390)
    [alert] = target.observe(closer)

    assert alert.data.event_ids == [closer.id, recent.id]


def test_the_alert_id_is_stable_across_replays_and_distinct_per_crossing() -> None:
    events = [attempt(s) for s in (0, 10, 20, 400, 410, 420)]

    first_run = feed(windows(person=3), *events)
    replay = feed(windows(person=3), *events)

    assert len(first_run) == 2
    assert [alert.model_dump_json() for alert in replay] == [
        alert.model_dump_json() for alert in first_run
    ]
    assert first_run[0].id != first_run[1].id


def test_the_alert_id_does_not_depend_on_the_arrival_order() -> None:
    events = [attempt(s) for s in (0, 10, 20)]

    [in_order] = feed(windows(person=3), *events)
    [shuffled] = feed(windows(person=3), events[2], events[0], events[1])

    assert shuffled.id == in_order.id
    assert shuffled.data == in_order.data


def test_state_of_keys_whose_rejections_all_expired_is_dropped() -> None:
    target = windows(window=300, lateness=60)

    target.observe(attempt(0, person="p1", device=DEVICE_A))
    assert len(target) == 2  # the person and the device

    target.observe(attempt(350, person="p2", device=DEVICE_B))
    assert len(target) == 4  # p1 is past its window, but still within the lateness

    target.observe(attempt(361, person="p2", device=DEVICE_B))
    assert len(target) == 2  # p1 forgotten: 361 - 300 - 60 is after its last rejection


def test_a_late_event_within_the_lateness_still_joins_its_keys_rejections() -> None:
    target = windows(person=2, window=300, lateness=60)
    early = attempt(0, person="p1")
    target.observe(attempt(350, person="p2"))  # another partition ran ahead

    # p1's own newest time is 0, so 200 is within its window of 300.
    late = attempt(200, person="p1")
    [alert] = feed(target, early, late)

    assert alert.data.event_ids == [early.id, late.id]


def test_memory_stays_bounded_under_a_stream_of_distinct_keys() -> None:
    target = windows(window=300, lateness=60)

    for index in range(2000):
        target.observe(attempt(index * 10, person=f"p{index}", device=uuid.uuid4()))

    # One person and one device per 10 s, kept for at most window + lateness = 360 s.
    assert len(target) <= 2 * (360 // 10 + 1)


def test_the_alert_carries_no_signature_nor_attempt_payload() -> None:
    target = windows(person=2, device=2)
    events = [attempt(0), attempt(1)]

    alerts = feed(target, *events)

    assert alerts
    for alert in alerts:
        body = alert.model_dump_json()
        assert SIGNATURE not in body
        assert "Pixel" not in body  # device_data
        assert not any(event.data.request_id in body for event in events)
        assert not {"signature", "otp", "device_data"} & set(alert.data.model_dump())


def test_reasons_are_read_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FRAUD_REASONS", "invalid_signature, challenge_expired")

    assert FraudSettings().fraud_reasons == {Reason.INVALID_SIGNATURE, Reason.CHALLENGE_EXPIRED}


@pytest.mark.parametrize("value", ["", "invalid_signature,idempotency_key_reused", "nonsense"])
def test_reasons_that_no_rejection_carries_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("FRAUD_REASONS", value)

    with pytest.raises(ValidationError):
        FraudSettings()
