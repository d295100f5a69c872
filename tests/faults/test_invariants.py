"""The fault suite's own checks, on made-up records (no broker, no database): a run that kept
every guarantee passes, and each way of breaking one on a device challenge is named."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.topics import TopicRecord
from tests.faults.client import Call
from tests.faults.invariants import Report, check_invariants
from tests.faults.kinds import BINDING, DEVICE
from tests.faults.snapshot import Attempt, Challenge, Challenges, StoreSnapshot

pytestmark = pytest.mark.faults


def _event(event_id: str, kind: str, reason: str | None = None, **data: Any) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "subject": "d1", "data": {"reason": reason, **data}}


CREATED = _event("c1", DEVICE.created)
WRONG = _event("a1", DEVICE.rejected, "invalid_signature", attempt=1, signature="bad")
RIGHT = _event("a2", DEVICE.verified, attempt=2, signature="good")
ATTEMPTS = [
    Attempt("d1", "bad", "rejected", 1, json.dumps(WRONG)),
    Attempt("d1", "good", "verified", 2, json.dumps(RIGHT)),
]
VERIFIED = Challenge("d1", "verified", 1, "key used", effect_matches=True)


def _calls() -> list[Call]:
    def put(label: str, signature: str, status: int, **more: Any) -> Call:
        path = f"{DEVICE.path}/d1"
        return Call(
            label,
            "PUT",
            path,
            f"req-{label}",
            kind="device",
            challenge_id="d1",
            signature=signature,
            status=status,
            **more,
        )

    return [
        Call("open", "POST", DEVICE.path, "req-open", kind="device", challenge_id="d1", status=201),
        put("wrong", "bad", 403, code="invalid_signature"),
        put("signed", "good", 204, correct=True),
    ]


@dataclass
class Run:
    """What a run left: the device challenge as stored (None: not stored), its counted
    attempts, and the events on the topic."""

    challenge: Challenge | None = VERIFIED
    attempts: list[Attempt] = field(default_factory=lambda: list(ATTEMPTS))
    # The identical retry of a decided signature republishes its event: no violation.
    events: list[dict[str, Any]] = field(default_factory=lambda: [CREATED, WRONG, RIGHT, RIGHT])

    def check(self) -> Report:
        challenges = {} if self.challenge is None else {"d1": self.challenge}
        store = StoreSnapshot(
            Challenges(BINDING, {}, []), Challenges(DEVICE, challenges, self.attempts), []
        )
        records = [
            TopicRecord(0, n, 0, b"d1", json.dumps(event).encode())
            for n, event in enumerate(self.events)
        ]
        return check_invariants(_calls(), [], store, records, [])


def test_a_device_challenge_that_kept_every_guarantee_passes() -> None:
    report = Run().check()
    assert report.violations == []
    assert (report.device_requests, report.device_challenges, report.device_verified) == (3, 1, 1)


def _counted_again(run: Run) -> None:
    run.events.append({**WRONG, "id": "a3", "data": {**WRONG["data"], "attempt": 2}})


def _more_failures_stored(run: Run) -> None:
    run.challenge = Challenge("d1", "verified", 2, "key used", effect_matches=True)


def _answered_204_but_pending(run: Run) -> None:
    run.challenge = Challenge("d1", "pending", 1, "key used", effect_matches=True)
    run.attempts, run.events = ATTEMPTS[:1], [CREATED, WRONG]


def _verified_twice(run: Run) -> None:
    run.events.append(_event("a4", DEVICE.verified, attempt=3, signature="other"))


def _key_not_used(run: Run) -> None:
    run.challenge = Challenge("d1", "verified", 1, "key used", effect_matches=False)


def _decision_not_announced(run: Run) -> None:
    run.events = [CREATED, WRONG]


def _opened_but_lost(run: Run) -> None:
    run.challenge, run.attempts, run.events = None, [], []


# Each way of breaking a guarantee, what the violation says, and (lost, double counted,
# wrongly verified).
BROKEN: list[tuple[Callable[[Run], None], str, tuple[int, int, int]]] = [
    (_counted_again, "counted by events ['a1', 'a3']", (0, 2, 0)),
    (_more_failures_stored, "failed_attempts=2, 1 rejected rows", (0, 2, 0)),
    (_answered_204_but_pending, "204 for device challenge d1, not so stored", (1, 0, 1)),
    (_verified_twice, "with 2 verified events", (0, 0, 0)),
    (_key_not_used, "key used not matching", (0, 0, 0)),
    (_decision_not_announced, "never published", (2, 0, 0)),
    (_opened_but_lost, "answered 201, not stored", (3, 0, 1)),
]


@pytest.mark.parametrize(
    ("breaking", "named", "counts"), BROKEN, ids=[case[0].__name__[1:] for case in BROKEN]
)
def test_each_broken_guarantee_on_a_device_challenge_is_named(
    breaking: Callable[[Run], None], named: str, counts: tuple[int, int, int]
) -> None:
    run = Run()
    breaking(run)
    report = run.check()
    assert any(named in violation for violation in report.violations), report.violations
    assert (report.lost, report.double_counted, report.wrongly_verified) == counts
