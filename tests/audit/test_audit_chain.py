"""The audit chain's pure parts: canonical events, hashes, and what counts as an event."""

from __future__ import annotations

import json

import pytest

from audit import chain
from audit.envelope import Unreadable, read_event
from tests.support.sample_events import attempt_event_json

pytestmark = pytest.mark.audit


def test_canonical_form_ignores_key_order_and_whitespace() -> None:
    a = json.loads('{"b": 1, "a": {"d": [1, 2], "c": "é"}}')
    b = json.loads('{"a":{"c":"é","d":[1,2]},"b":1}')
    assert chain.canonical_event(a) == chain.canonical_event(b) == '{"a":{"c":"é","d":[1,2]},"b":1}'


def test_event_hash_is_sha256_of_the_canonical_utf8() -> None:
    assert chain.event_hash("{}") == (
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


def test_record_hash_covers_every_part_of_the_link() -> None:
    link = (7, "e-7", "a" * 64, "b" * 64)
    variants = [
        (8, "e-7", "a" * 64, "b" * 64),
        (7, "e-8", "a" * 64, "b" * 64),
        (7, "e-7", "c" * 64, "b" * 64),
        (7, "e-7", "a" * 64, "c" * 64),
    ]
    hashes = {chain.record_hash(*parts) for parts in [link, *variants]}
    assert len(hashes) == 5


def test_an_event_is_read_with_unknown_fields_kept() -> None:
    document = json.loads(attempt_event_json(1))
    document["added_in_v2"] = {"z": 1, "a": 2}
    read = read_event(json.dumps(document).encode())
    assert read.event_id == document["id"]
    assert read.event_type == "mfa.device_binding.signature_rejected"
    assert read.subject == document["subject"]
    assert json.loads(read.canonical) == document


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (None, "no value (tombstone)"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"specversion": "1.0", "source": "/x", "type": "t"}', "missing or invalid id"),
        (b'{"specversion": "1.0", "id": "", "source": "/x", "type": "t"}', "invalid id"),
        (b'{"id": "1", "source": "/x"}', "specversion, type"),
    ],
)
def test_what_is_not_an_event_is_unreadable(value: bytes | None, detail: str) -> None:
    with pytest.raises(Unreadable) as raised:
        read_event(value)
    assert detail in raised.value.detail
