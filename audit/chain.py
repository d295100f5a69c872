"""The hash chain: how an event is made canonical and how each record is linked.

A record's hash covers its position, its event id, the previous record's hash and the
hash of the canonical event, so a record that is modified, removed, inserted or moved
breaks the link of the record after it. Pure functions: the consumer uses them to append,
the ``verify`` command to check, and anyone can re-implement them from this description:

- canonical event: the event's JSON object re-serialised with keys sorted at every level,
  no insignificant whitespace, non-ASCII characters kept as UTF-8 (``ensure_ascii=False``);
- ``event_hash`` = hex SHA-256 of the canonical event's UTF-8 bytes;
- ``record_hash`` = hex SHA-256 of ``"{seq}\\n{event_id}\\n{previous_hash}\\n{event_hash}"``;
- the first record's ``previous_hash`` is :data:`GENESIS_HASH`.
"""

import hashlib
import json
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_event(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(canonical: str) -> str:
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_hash(seq: int, event_id: str, previous_hash: str, event_digest: str) -> str:
    link = f"{seq}\n{event_id}\n{previous_hash}\n{event_digest}"
    return hashlib.sha256(link.encode()).hexdigest()
