"""Persons the service locked (SPEC §9) raised as fraud alerts: one ``person_lock_alert`` per
``person_locked`` event.

Pure logic, no Kafka, as the windows are (``fraud/windows.py``). The worker announces a lock
once, and with the same CloudEvents id whenever it announces it again; the alert's id is made
from that id, so a lock redelivered or republished gets the same alert, which consumers of the
alerts drop. While the lock lasts, a copy of its event raises nothing at all: its id is
remembered until the lock's end, judged by the newest lock seen (event time, never the
clock, so a replay gives the same alerts).
"""

from __future__ import annotations

import heapq
import uuid
from datetime import datetime

from fraud.records import event_time, utc
from schemas.events import PersonLockedEvent
from schemas.signals import PersonLockAlert, PersonLockAlertEvent

# Alert ids are UUIDv5 in this namespace, so the same lock always gets the same id.
_NAMESPACE = uuid.UUID("26904033-2c0b-45c0-a1ee-6844b0e056a2")


class LockAlerts:
    """The locks seen, by their event's id, for as long as each lasts."""

    def __init__(self) -> None:
        self._seen: set[str] = set()
        # (lock end, event id): the ids in the order they can be forgotten.
        self._forget_queue: list[tuple[datetime, str]] = []
        self._watermark: datetime | None = None

    def __len__(self) -> int:
        """How many locks are currently remembered."""
        return len(self._seen)

    def observe(self, event: PersonLockedEvent) -> list[PersonLockAlertEvent]:
        """The alert of a lock not seen yet; nothing for a copy of one that is."""
        self._forget_ended(event_time(event))
        if event.id in self._seen:
            return []
        self._seen.add(event.id)
        heapq.heappush(self._forget_queue, (utc(event.data.locked_until), event.id))
        return [_alert(event)]

    def _forget_ended(self, at: datetime) -> None:
        if self._watermark is None or at > self._watermark:
            self._watermark = at
        while self._forget_queue and self._forget_queue[0][0] <= self._watermark:
            _, event_id = heapq.heappop(self._forget_queue)
            self._seen.discard(event_id)


def _alert(event: PersonLockedEvent) -> PersonLockAlertEvent:
    data = event.data
    return PersonLockAlertEvent(
        id=str(uuid.uuid5(_NAMESPACE, f"person_locked:{event.id}")),
        subject=event.subject,
        time=event_time(event),
        data=PersonLockAlert(
            person_id=data.person_id,
            client_id=data.client_id,
            consecutive_failures=data.consecutive_failures,
            locked_at=data.locked_at,
            locked_until=data.locked_until,
            challenge_id=data.challenge_id,
            device_id=data.device_id,
            event_id=event.id,
        ),
    )
