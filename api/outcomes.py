"""Turns a worker's :class:`~schemas.replies.Reply` into a route's answer or an error.

A reply that breaks the contract (a rejection without a reason, a body that does not match
the route's response model) is a bug between API and worker: it is logged by its command id
and answered 500, never passed on.
"""

import logging
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from api.errors import InternalError
from api.rejections import Rejected
from schemas.replies import Reply

logger = logging.getLogger(__name__)

Body = TypeVar("Body", bound=BaseModel)


def answer(reply: Reply, model: type[Body]) -> Body:
    """The ``ok`` reply's body as ``model``; raises :class:`~api.errors.Rejected` otherwise."""
    _raise_unless_ok(reply)
    try:
        return model.model_validate(reply.body)
    except ValidationError as exc:
        problems = [(error["loc"], error["type"]) for error in exc.errors()]
        logger.error(
            "reply to command %s does not fit %s: %s", reply.command_id, model.__name__, problems
        )
        raise InternalError() from None


def no_content(reply: Reply) -> None:
    """Return only if the worker said ``ok``: a 204 is never answered on anything else."""
    _raise_unless_ok(reply)


def _raise_unless_ok(reply: Reply) -> None:
    if reply.outcome == "ok":
        return
    if reply.outcome == "rejected" and reply.reason is not None:
        raise Rejected(
            reply.reason,
            attempts_remaining=reply.attempts_remaining,
            retry_after_seconds=reply.retry_after_seconds,
            locked_until=reply.locked_until,
        )
    logger.error("reply to command %s is rejected without a reason", reply.command_id)
    raise InternalError()
