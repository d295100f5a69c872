"""The HTTP front's errors, and how they are answered (SPEC §3, "Errors")::

    ApiError                  status, code, title, detail, source field; rendered by status
    ├── RequestInvalid        400 validation_error      the request breaks the contract
    ├── Unauthorized          401 unauthorized          from api.auth.Unauthenticated
    ├── Forbidden             403 insufficient_scope    from api.auth.InsufficientScope
    ├── NotFound              404 not_found             path id not a UUID, unknown route
    ├── MethodNotAllowed      405 method_not_allowed
    ├── UnsupportedMediaType  415 unsupported_media_type  the body is not declared as JSON
    ├── Rejected              403/404/409/429 <reason>  a worker refused (api.rejections)
    ├── TooManyRequests       429 too_many_requests     the client's rate (api.rejections)
    ├── InternalError         500 generic_error         a bug; details only in the log
    └── Unavailable           503, with Retry-After
        ├── ServiceUnavailable    service_unavailable   Kafka did not take the command
        └── VerificationPending   verification_pending  no reply in time; retry the same call

Statuses 401, 403, 409 and 429 answer an :class:`~schemas.errors.ErrorList`, every other one a
:class:`~schemas.errors.FlatError` (:func:`render`). ``id`` is the request's correlation id.
A body never carries a stack trace, a submitted value (signature, key, device data) or a
token. :mod:`api.error_handlers` turns exceptions into these answers.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Final

from fastapi.responses import JSONResponse

from api.auth import REQUIRED_SCOPE
from schemas.errors import (
    LIST_SHAPED_STATUSES,
    ErrorCode,
    ErrorItem,
    ErrorList,
    ErrorSource,
    FlatError,
)
from schemas.reasons import Reason

NOT_FOUND_DETAIL: Final = "The requested resource does not exist."


class ApiError(Exception):
    """Root of the errors the HTTP front answers with; everything here is safe to show."""

    def __init__(
        self,
        *,
        status: int,
        code: str,
        title: str,
        detail: str,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        # `source.field` of the list shape; unused by the flat one.
        self.field = field
        self.headers = dict(headers or {})


class RequestInvalid(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            status=400, code=ErrorCode.VALIDATION_ERROR, title="Validation Error", detail=detail
        )

    @classmethod
    def from_errors(cls, errors: Iterable[Mapping[str, Any]]) -> "RequestInvalid":
        """From pydantic error dicts: names the failing fields, never the submitted values."""
        return cls(describe_validation_errors(errors))


class Unauthorized(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            status=401,
            code=ErrorCode.UNAUTHORIZED,
            title="Unauthorized",
            detail=detail,
            field="Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )


class Forbidden(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            status=403,
            code=ErrorCode.FORBIDDEN,
            title="Insufficient Scope",
            detail=detail,
            field="Authorization",
            headers={
                "WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{REQUIRED_SCOPE}"'
            },
        )


class NotFound(ApiError):
    def __init__(self) -> None:
        # One sentence for every missing thing: a resource owned by another client must be
        # indistinguishable from one that does not exist.
        super().__init__(
            status=404, code=Reason.NOT_FOUND, title="Not Found", detail=NOT_FOUND_DETAIL
        )


class MethodNotAllowed(ApiError):
    def __init__(self, allow: str | None) -> None:
        super().__init__(
            status=405,
            code=ErrorCode.METHOD_NOT_ALLOWED,
            title="Method Not Allowed",
            detail="The resource does not support this method.",
            headers={"Allow": allow} if allow else None,
        )


class UnsupportedMediaType(ApiError):
    """415: the body is not declared as UTF-8 JSON (``Content-Type``); checked after
    authentication and before the body is read."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            status=415,
            code=ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            title="Unsupported Media Type",
            detail=detail,
            field="Content-Type",
        )


class InternalError(ApiError):
    def __init__(self) -> None:
        super().__init__(
            status=500,
            code=ErrorCode.GENERIC_ERROR,
            title="Generic Error",
            detail="There was an error.",
        )


class Unavailable(ApiError):
    """503: the caller should try again after ``Retry-After`` seconds."""

    def __init__(self, *, code: str, title: str, detail: str, retry_after_seconds: int) -> None:
        super().__init__(
            status=503,
            code=code,
            title=title,
            detail=detail,
            headers={"Retry-After": str(retry_after_seconds)},
        )


class ServiceUnavailable(Unavailable):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            code=ErrorCode.SERVICE_UNAVAILABLE,
            title="Service Unavailable",
            detail="The service cannot take the request right now; retry later.",
            retry_after_seconds=retry_after_seconds,
        )


class VerificationPending(Unavailable):
    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            code=ErrorCode.VERIFICATION_PENDING,
            title="Verification Pending",
            detail="The request was accepted but has no result yet; retry the same request.",
            retry_after_seconds=retry_after_seconds,
        )


# --- rendering -------------------------------------------------------------------------


def render(error: ApiError, request_id: str) -> JSONResponse:
    """The body shape the seed gives for the status (the middleware adds X-Request-ID)."""
    body: ErrorList | FlatError
    if error.status in LIST_SHAPED_STATUSES:
        source = ErrorSource(field=error.field or "request", message=error.detail)
        item = ErrorItem(
            id=request_id,
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            source=source,
        )
        body = ErrorList(errors=[item])
    else:
        body = FlatError(
            id=request_id,
            status=error.status,
            code=error.code,
            title=error.title,
            detail=error.detail,
            error_code=error.code,
        )
    return JSONResponse(
        body.model_dump(mode="json"), status_code=error.status, headers=error.headers
    )


_LOCATIONS: Final = frozenset({"body", "query", "path", "header", "cookie"})
_MAX_LISTED_ERRORS: Final = 5
_MAX_FIELD_CHARS: Final = 64
# Pydantic messages that state the expectation and never quote the input.
_MESSAGES_KEPT: Final = frozenset(
    {
        "string_too_short",
        "string_too_long",
        "string_pattern_mismatch",
        "literal_error",
        "enum",
    }
)
_MESSAGES: Final = {
    "missing": "is required",
    "extra_forbidden": "is not an accepted field",
    "json_invalid": "is not valid JSON",
    "json_type": "is not valid JSON",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be a string",
}


def describe_validation_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """One sentence naming each failing field and what is wrong with it."""
    parts = [f"{_field_path(error)}: {_message(error)}" for error in errors]
    if not parts:
        return "The request is invalid."
    shown = parts[:_MAX_LISTED_ERRORS]
    if len(parts) > len(shown):
        shown.append(f"and {len(parts) - len(shown)} more")
    return "Invalid request: " + "; ".join(shown) + "."


def _field_path(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    if loc and loc[0] in _LOCATIONS and len(loc) > 1:
        loc = loc[1:]
    if not loc or loc == ["body"]:
        return "body"
    # A field name may come from the caller (an unknown key): keep it short and printable.
    path = ".".join(loc)
    printable = "".join(char if char.isprintable() else "?" for char in path)
    return printable[:_MAX_FIELD_CHARS]


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    message = str(error.get("msg", ""))
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    if kind in _MESSAGES_KEPT:
        return message
    if kind in ("value_error", "assertion_error"):
        # Our own validators' messages (schemas/fields.py) name the rule, not the value.
        return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return "is invalid"


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error body of each status."""
    return {
        status: {"model": ErrorList if status in LIST_SHAPED_STATUSES else FlatError}
        for status in statuses
    }
