"""Result events read off Kafka: the signature attempts kept (binding and device signing
alike, :mod:`fraud.attempts`), everything else skipped.

Skipping is logged by position (topic, partition, offset) and, for a malformed event, by
where it is malformed; never with the payload, which holds a signature.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from fraud.attempts import MODELS, AttemptEvent
from schemas.events import EventType, PersonLocked, PersonLockedEvent

logger = logging.getLogger(__name__)

ReadEvent = AttemptEvent | PersonLockedEvent
_MODELS: dict[str, type[ReadEvent]] = {**MODELS, EventType.PERSON_LOCKED: PersonLockedEvent}


def event_time(event: ReadEvent) -> datetime:
    """When the event's fact happened, in UTC: an attempt's ``decided_at``, a lock's
    ``locked_at``. A naive time (not what the worker sends) is UTC.

    Aware and naive datetimes cannot be compared, so one stray naive time would otherwise
    break every comparison of its key.
    """
    data = event.data
    return utc(data.locked_at if isinstance(data, PersonLocked) else data.decided_at)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC, a naive one taken as UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_event(value: bytes | None, *, topic: str, partition: int, offset: int) -> ReadEvent | None:
    """The attempt or lock event in one record's value, or None for any other record."""
    where = f"{topic}[{partition}]@{offset}"
    try:
        document: Any = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        logger.warning("skipped %s: not JSON", where)
        return None
    event_type = document.get("type") if isinstance(document, dict) else None
    if not isinstance(event_type, str):
        logger.warning("skipped %s: not a CloudEvent (no type)", where)
        return None
    model = _MODELS.get(event_type)
    if model is None:
        # challenge_created, device_challenge_created, key_added, device_unbound, and
        # whatever types come later: not ours.
        logger.debug("skipped %s: type %s", where, event_type)
        return None
    try:
        # Fields added later within v1 are ignored, as the published contract asks of every
        # consumer (contracts/README.md): the wire models themselves refuse unknown fields.
        return model.model_validate(document, extra="ignore")
    except ValidationError as error:
        # The error type, not its message: some messages quote the offending input.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['type']}"
            for issue in error.errors(include_input=False, include_url=False)[:5]
        )
        logger.warning("skipped %s: malformed %s event (%s)", where, event_type, problems)
        return None
