"""The correlation id of each request: ``X-Request-ID``.

Taken from the request when the caller sent a sane one (at most 128 characters of
``[A-Za-z0-9._:-]``), otherwise a new uuid4. It is stored in the request scope (error bodies
carry it as ``id``, commands as ``request_id``) and set on every response, errors included.
"""

import re
import uuid
from typing import Final

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.logs import bind_log_context

REQUEST_ID_HEADER: Final = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_SCOPE_KEY: Final = "request_id"


def accepted_request_id(value: str | None) -> str | None:
    """The caller's id if it is safe to echo into headers, bodies, events and logs."""
    if value is not None and _SANE.fullmatch(value):
        return value
    return None


def request_id_of(scope: Scope) -> str:
    """The id :class:`RequestIdMiddleware` gave this request."""
    state = scope.get("state") or {}
    value = state.get(_SCOPE_KEY)
    if isinstance(value, str):
        return value
    # Only reachable when the middleware is not installed (never in create_app).
    return str(uuid.uuid4())


class RequestIdMiddleware:
    """Pure ASGI middleware: assigns the id before anything else runs, and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(REQUEST_ID_HEADER)
        request_id = accepted_request_id(given) or str(uuid.uuid4())
        scope.setdefault("state", {})[_SCOPE_KEY] = request_id
        bind_log_context(request_id=request_id)  # this request's task only

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)
