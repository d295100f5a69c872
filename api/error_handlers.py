"""How the app answers what went wrong: exception handlers and the catch-all.

- :class:`~api.errors.ApiError`: rendered as is;
- FastAPI's ``RequestValidationError`` (a query parameter): 400 ``validation_error``;
- Starlette's HTTP errors: unknown route 404, unknown method 405 (with ``Allow``);
- anything else: 500 ``generic_error`` from :class:`UnhandledErrorMiddleware`, logged with the
  request id, method and path, never bodies or headers.
"""

import logging
from http import HTTPStatus
from typing import Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError, ValidationException
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, InternalError, MethodNotAllowed, NotFound, RequestInvalid, render
from api.request_ids import request_id_of

logger = logging.getLogger(__name__)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return render(exc, request_id_of(request.scope))


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return render(RequestInvalid.from_errors(exc.errors()), request_id_of(request.scope))


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error: ApiError
    if exc.status_code == 404:
        error = NotFound()
    elif exc.status_code == 405:
        error = MethodNotAllowed(_allowed_methods(request))
    elif exc.status_code == 400:
        error = RequestInvalid("The request could not be read.")
    else:
        phrase = HTTPStatus(exc.status_code).phrase
        error = ApiError(
            status=exc.status_code,
            code=phrase.lower().replace(" ", "_").replace("-", "_"),
            title=phrase,
            detail=f"{phrase}.",
            field="request",
            headers=exc.headers,
        )
    return render(error, request_id_of(request.scope))


_METHODS: Final = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> str:
    # Starlette's own Allow names the methods of the first route matching the path only.
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
    return ", ".join(allowed)


class UnhandledErrorMiddleware:
    """Answers 500 ``generic_error`` for any exception nothing else handled.

    Installed inside :class:`~api.request_ids.RequestIdMiddleware`, so the answer carries the
    request id; the log line names the request id, method and path, never bodies or headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            request_id = request_id_of(scope)
            _log_unhandled(exc, request_id, scope)
            await render(InternalError(), request_id)(scope, receive, send)


def _log_unhandled(exc: Exception, request_id: str, scope: Scope) -> None:
    where = f"{scope.get('method')} {scope.get('path')}"
    if isinstance(exc, ValidationError | ValidationException):
        # Their text quotes the input; log only where and why validation failed.
        summary = [(error.get("loc"), error.get("type")) for error in exc.errors()]
        logger.error(
            "request %s (%s) failed: %s %s", request_id, where, type(exc).__name__, summary
        )
        return
    logger.error("request %s (%s) failed", request_id, where, exc_info=exc)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers and the catch-all middleware on ``app``."""
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_middleware(UnhandledErrorMiddleware)
