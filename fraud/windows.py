"""Rejections counted per person and per device in sliding windows of event time.

Pure logic, no Kafka: feed it result events in (roughly) the order they happened and it
returns the alerts to publish. Time is each event's ``decided_at``, never the clock, so a
replay of the same events yields the same alerts with the same ids.

A key (a person, or a device) raises one alert when its count of rejections within the
window reaches the threshold, and then stays quiet until its count has fallen below the
threshold again: the 4th, 5th... rejection of the same burst add nothing.

Rejections of binding attempts and of device signing attempts (SPEC §8) count alike, in the
same windows: one person's, or one device's, whichever they come from.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from fraud.attempts import REJECTED, AttemptEvent
from fraud.records import event_time
from schemas.reasons import Reason
from schemas.signals import ReasonCount, Scope, SuspiciousActivity, SuspiciousActivityEvent

# Alert ids are UUIDv5 in this namespace, so the same crossing always gets the same id.
_NAMESPACE = uuid.UUID("3d6d0d10-f4df-4e30-83a7-615749a24492")

DEFAULT_REASONS = frozenset({Reason.INVALID_SIGNATURE, Reason.CHALLENGE_LOCKED})


@dataclass(frozen=True, slots=True)
class _Rejection:
    at: datetime
    event_id: str
    reason: Reason
    device_id: UUID | None
    client_id: str


def _order(rejection: _Rejection) -> tuple[datetime, str]:
    # The id breaks ties between equal times, so the order does not depend on arrival.
    return rejection.at, rejection.event_id


@dataclass(frozen=True, slots=True)
class _Key:
    scope: Scope
    person_id: str
    device_id: UUID | None  # set for scope device only

    @property
    def subject(self) -> str:
        return self.person_id if self.device_id is None else str(self.device_id)


@dataclass(slots=True)
class _Window:
    newest: datetime
    # Sorted oldest first (by _order): expiring is cutting a prefix.
    rejections: list[_Rejection] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    # True from the alert until the count falls below the threshold again.
    alerted: bool = False


class RejectionWindows:
    """Sliding windows of counted rejections, one per person and one per device.

    Out-of-order events (partitions read side by side drift apart a little) are handled
    per key: rejections are kept sorted and expire relative to the newest time seen for
    that key, and one older than that newest time minus the window is not counted at all.

    A key is forgotten once every one of its rejections has expired, judged against the
    newest time seen for any key: ``lateness`` later than a window after its last
    rejection, so that a late event can still join the rejections it belongs with.
    """

    def __init__(
        self,
        *,
        window: timedelta,
        person_threshold: int,
        device_threshold: int,
        reasons: Collection[Reason] = DEFAULT_REASONS,
        lateness: timedelta = timedelta(seconds=60),
    ) -> None:
        if window <= timedelta(0):
            raise ValueError("window must be positive")
        if person_threshold < 1 or device_threshold < 1:
            raise ValueError("thresholds must be at least 1")
        if lateness < timedelta(0):
            raise ValueError("lateness must not be negative")
        self._window = window
        self._thresholds = {Scope.PERSON: person_threshold, Scope.DEVICE: device_threshold}
        self._reasons = frozenset(reasons)
        self._lateness = lateness
        self._windows: dict[_Key, _Window] = {}
        # (newest time of a key, tie-breaker, key): the keys in the order they can be
        # forgotten. An entry whose time is no longer its key's newest is stale and skipped;
        # the counter keeps keys themselves from ever being compared.
        self._forget_queue: list[tuple[datetime, int, _Key]] = []
        self._sequence = itertools.count()
        self._watermark: datetime | None = None

    def __len__(self) -> int:
        """How many keys (persons and devices) currently hold state."""
        return len(self._windows)

    def observe(self, event: AttemptEvent) -> list[SuspiciousActivityEvent]:
        """Count one result event; return the alerts whose threshold it made reached."""
        data = event.data
        if (
            event.type not in REJECTED
            or data.outcome != "rejected"
            or data.reason not in self._reasons
            # not_found: the challenge is unknown, so is whose it was. Nothing to count.
            or data.person_id is None
        ):
            return []
        rejection = _Rejection(
            at=event_time(event),
            event_id=event.id,
            reason=data.reason,
            device_id=data.device_id,
            client_id=data.client_id,
        )
        keys = [_Key(Scope.PERSON, data.person_id, None)]
        if data.device_id is not None:
            keys.append(_Key(Scope.DEVICE, data.person_id, data.device_id))
        alerts = [alert for key in keys if (alert := self._count(key, rejection)) is not None]
        self._forget_expired(rejection.at)
        return alerts

    def _count(self, key: _Key, rejection: _Rejection) -> SuspiciousActivityEvent | None:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(newest=rejection.at)
            self._queue_for_forgetting(key, window.newest)
        elif rejection.event_id in window.ids:
            return None  # a redelivered event: counted already
        now = max(window.newest, rejection.at)
        horizon = now - self._window
        if rejection.at <= horizon:
            return None  # so late that it is outside this key's window already
        # Expire before adding: the count just before this rejection is the lowest the
        # window held since the previous one, so that is where a drop below the threshold
        # (which re-arms the key) shows.
        self._expire(window, horizon)
        threshold = self._thresholds[key.scope]
        if len(window.rejections) < threshold:
            window.alerted = False
        bisect.insort(window.rejections, rejection, key=_order)
        window.ids.add(rejection.event_id)
        if now > window.newest:
            window.newest = now
            self._queue_for_forgetting(key, now)
        if len(window.rejections) < threshold or window.alerted:
            return None
        window.alerted = True
        return self._alert(key, window, threshold)

    def _expire(self, window: _Window, horizon: datetime) -> None:
        # The window is (now - window, now]: a rejection exactly one window old is out.
        cut = bisect.bisect_right(window.rejections, horizon, key=lambda r: r.at)
        for rejection in window.rejections[:cut]:
            window.ids.discard(rejection.event_id)
        del window.rejections[:cut]

    def _queue_for_forgetting(self, key: _Key, newest: datetime) -> None:
        heapq.heappush(self._forget_queue, (newest, next(self._sequence), key))

    def _forget_expired(self, at: datetime) -> None:
        if self._watermark is None or at > self._watermark:
            self._watermark = at
        horizon = self._watermark - self._window - self._lateness
        while self._forget_queue and self._forget_queue[0][0] <= horizon:
            newest, _, key = heapq.heappop(self._forget_queue)
            window = self._windows.get(key)
            if window is not None and window.newest == newest:
                del self._windows[key]

    def _alert(self, key: _Key, window: _Window, threshold: int) -> SuspiciousActivityEvent:
        counted = window.rejections
        reasons = Counter(rejection.reason for rejection in counted)
        # Named by the rejection that made the crossing, so the same crossing replayed after
        # a restart gets the same id and consumers drop the copy. Taken as the newest counted
        # one rather than the last to arrive: the two are the same in order, and when events
        # came out of order, the newest is what a replay in event-time order (the warm-up)
        # would name.
        crossing = counted[-1]
        alert_id = uuid.uuid5(_NAMESPACE, f"{key.scope}:{key.subject}:{crossing.event_id}")
        return SuspiciousActivityEvent(
            id=str(alert_id),
            subject=key.subject,
            time=counted[-1].at,
            data=SuspiciousActivity(
                scope=key.scope,
                person_id=key.person_id,
                device_id=key.device_id,
                client_ids=sorted({rejection.client_id for rejection in counted}),
                rejections=len(counted),
                threshold=threshold,
                window_seconds=int(self._window.total_seconds()),
                reasons=[
                    ReasonCount(reason=reason, count=count)
                    for reason, count in sorted(reasons.items())
                ],
                first_rejection_at=counted[0].at,
                last_rejection_at=counted[-1].at,
                event_ids=[rejection.event_id for rejection in counted],
                devices=len({r.device_id for r in counted if r.device_id is not None}),
            ),
        )
