"""The fraud consumer reads v1 events as the published contract asks of every consumer."""

from __future__ import annotations

import json

import pytest

from fraud.records import read_event
from schemas.events import SignatureAttempt
from tests.support.sample_events import attempt_event_json

pytestmark = pytest.mark.audit


def test_fields_added_later_within_v1_are_ignored() -> None:
    document = json.loads(attempt_event_json(1))
    document["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    document["data"]["risk_score"] = 0.2
    event = read_event(json.dumps(document).encode(), topic="t", partition=0, offset=0)
    assert event is not None
    assert event.id == document["id"]
    assert isinstance(event.data, SignatureAttempt)
    assert event.data.reason == "invalid_signature"


def test_a_retyped_field_is_still_refused() -> None:
    document = json.loads(attempt_event_json(1))
    document["data"]["decided_at"] = "yesterday"
    assert read_event(json.dumps(document).encode(), topic="t", partition=0, offset=0) is None
