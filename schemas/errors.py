"""HTTP error bodies, in the two shapes the seed endpoint defines, and the error codes.

- 400, 404, 415, 500, 503 answer a flat :class:`FlatError`;
- 401, 403, 409 and 429 answer an :class:`ErrorList` of :class:`ErrorItem` (SPEC §9 gives
  429 the list shape).

A rejection decided by a worker uses its :class:`~schemas.reasons.Reason` value as ``code``;
the codes below are the ones only the HTTP front produces.
"""

from enum import StrEnum

from schemas.model import WireModel

LIST_SHAPED_STATUSES = frozenset({401, 403, 409, 429})


class ErrorCode(StrEnum):
    VALIDATION_ERROR = "validation_error"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "insufficient_scope"
    SERVICE_UNAVAILABLE = "service_unavailable"
    VERIFICATION_PENDING = "verification_pending"
    GENERIC_ERROR = "generic_error"


class FlatError(WireModel):
    id: str
    status: int
    code: str
    title: str
    detail: str
    error_code: str


class ErrorSource(WireModel):
    field: str
    message: str


class ErrorItem(WireModel):
    id: str
    status: int
    code: str
    title: str
    detail: str
    source: ErrorSource


class ErrorList(WireModel):
    errors: list[ErrorItem]
