"""A person's limits (SPEC §9): consecutive failed signatures and the lock they lead to, and
the caps on pending binding challenges and OTPs sent.

Counted per (client, person) across all the person's challenges (binding and device) and
key additions: a counted failure adds one, a verified signature resets the count, and the
fifth failure in a row locks the person's new challenges for the lock's duration (and
starts the count again). The count is decided with the attempt, in the attempt's store
transaction, so that it holds across API replicas, workers and partitions.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.reasons import Reason
from telemetry import limits
from worker.state import PersonChange, PersonState

MAX_CONSECUTIVE_FAILURES = 5
DEFAULT_PERSON_LOCK = timedelta(seconds=900)

Owner = tuple[str, str]  # (client id, person id)
# Builds the person_locked event's JSON: (consecutive failures, locked at, locked until).
LockEvent = Callable[[int, datetime, datetime], str]


def lock_end(person: PersonState | None, now: datetime) -> datetime | None:
    """When the person's lock ends, if it is locked at ``now``."""
    if person is None or person.locked_until is None or person.locked_until <= now:
        return None
    return person.locked_until


class PersonCounts:
    """The people of a batch as its earlier decisions left them; ``changes`` is what the
    store writes."""

    def __init__(
        self, people: Mapping[Owner, PersonState], *, now: datetime, lock_for: timedelta
    ) -> None:
        self._people = dict(people)
        self._now = now
        self._lock_for = lock_for
        self.changes: dict[Owner, PersonChange] = {}

    def failed(self, owner: Owner, *, attempt: str, lock_event: LockEvent) -> str | None:
        """Count a failure of ``attempt``; the person_locked event's JSON if it locks."""
        person = self._people.get(owner, PersonState())
        failures = person.consecutive_failures + 1
        if failures < MAX_CONSECUTIVE_FAILURES or lock_end(person, self._now) is not None:
            self._set(
                owner,
                PersonState(
                    failures, person.locked_until, person.locked_by, person.lock_event_json
                ),
            )
            return None
        until = self._now + self._lock_for
        event_json = lock_event(failures, self._now, until)
        self._set(owner, PersonState(0, until, attempt, event_json))
        return event_json

    def verified(self, owner: Owner) -> None:
        person = self._people.get(owner)
        if person is not None and person.consecutive_failures:
            self._set(
                owner,
                PersonState(0, person.locked_until, person.locked_by, person.lock_event_json),
            )

    def locked_until(self, owner: Owner) -> datetime | None:
        """When the person's lock ends, if locked now."""
        return lock_end(self._people.get(owner), self._now)

    def lock_of(self, owner: Owner, attempt: str) -> str | None:
        """The lock event ``attempt`` started, if it did: announced again on a redelivery."""
        person = self._people.get(owner)
        if person is None or person.locked_by != attempt:
            return None
        return person.lock_event_json

    def _set(self, owner: Owner, person: PersonState) -> None:
        self._people[owner] = person
        self.changes[owner] = PersonChange(client_id=owner[0], person_id=owner[1], state=person)


MAX_PENDING_CHALLENGES = 3
DEFAULT_OTP_SENDS_PER_HOUR = 5
OTP_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Limited:
    """A request refused by a person's limit: why, when to retry, when a lock ends."""

    reason: Reason
    retry_after: timedelta | None = None
    locked_until: datetime | None = None
    # Which limit (telemetry.limits' label), for device_binding_limited_total.
    limit: str | None = None


def locked(person: PersonState | None, now: datetime) -> Limited | None:
    """The person's lock, if new challenges are refused at ``now``."""
    until = lock_end(person, now)
    if until is None:
        return None
    return Limited(Reason.PERSON_TEMPORARILY_LOCKED, until - now, until, limits.PERSON_LOCKED)


def registration_limited(
    person: PersonState | None,
    pending_expiries: Sequence[datetime],
    recent_sends: Sequence[datetime],
    *,
    now: datetime,
    otp_sends_per_hour: int,
    max_pending: int = MAX_PENDING_CHALLENGES,
) -> Limited | None:
    """Whether a new binding challenge (and its OTP) for the person is refused at ``now``:
    the person is locked; or already has ``max_pending`` pending (retry when
    the first expires); or was sent ``otp_sends_per_hour`` OTPs in the last hour (retry when
    the oldest of them leaves the hour)."""
    lock = locked(person, now)
    if lock is not None:
        return lock
    pending = sorted(expiry for expiry in pending_expiries if expiry > now)
    if len(pending) >= max_pending:
        return Limited(
            Reason.TOO_MANY_REQUESTS, pending[-max_pending] - now, limit=limits.PENDING_CHALLENGES
        )
    sent = sorted(moment for moment in recent_sends if moment > now - OTP_WINDOW)
    if len(sent) >= otp_sends_per_hour:
        oldest = sent[-otp_sends_per_hour]
        return Limited(Reason.TOO_MANY_REQUESTS, oldest + OTP_WINDOW - now, limit=limits.OTP_SENDS)
    return None
