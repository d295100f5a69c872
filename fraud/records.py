"""Result events read off Kafka: the signature attempts kept (binding and device signing
alike, :mod:`fraud.attempts`), everything else skipped.

Skipping is logged by position (topic, partition, offset) and, for a malformed event, by
where it is malformed; never with the payload, which holds a signature.
"""

import json
import logging
from typing import Any

from pydantic import ValidationError

from fraud.attempts import MODELS, AttemptEvent

logger = logging.getLogger(__name__)


def read_attempt(
    value: bytes | None, *, topic: str, partition: int, offset: int
) -> AttemptEvent | None:
    """The attempt event in one record's value, or None for any other record."""
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
    model = MODELS.get(event_type)
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
