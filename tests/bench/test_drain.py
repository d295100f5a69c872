"""What the drain reads off the events topic: each challenge once, copies counted."""

import json

from bench.drain_watch import timeline

VERIFIED = "mfa.device_binding.signature_verified"


def _event(event_id: str, subject: str, kind: str = VERIFIED) -> bytes:
    return json.dumps({"id": event_id, "subject": subject, "type": kind}).encode()


def test_each_challenge_counts_once_from_its_first_event() -> None:
    records = [
        (1_000_000, _event("e1", "c1")),
        (1_000_500, _event("e2", "c2")),
        (1_001_000, _event("e1", "c1")),  # c1 republished after a rebalance, same id
        (1_002_000, _event("e3", "c3")),
        (1_009_000, _event("e3", "c3")),  # a late copy does not stretch the window
    ]
    seen = timeline(records)
    assert (seen.events, seen.distinct_ids, seen.decided) == (5, 3, 3)
    assert seen.first_s == 1000.0
    assert seen.last_s == 1002.0
    assert seen.types == {VERIFIED: 5}


def test_records_out_of_order_and_other_types_are_reported() -> None:
    records = [
        (2_000, _event("e2", "c2", "mfa.device_binding.signature_rejected")),
        (1_000, _event("e1", "c1")),
    ]
    seen = timeline(records)
    assert (seen.first_s, seen.last_s) == (1.0, 2.0)
    assert seen.types == {VERIFIED: 1, "mfa.device_binding.signature_rejected": 1}
