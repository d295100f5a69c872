"""The HTTP front's own limits (SPEC §9), before anything is published:

- :class:`InFlightLimit`, an ASGI middleware: at most ``MAX_IN_FLIGHT`` requests on ``/v1``
  served at once by this replica; past it, 503 ``service_unavailable`` with ``Retry-After``
  at once, before the token is read, rather than a queue whose wait every caller pays;
- :func:`within_client_rate`, a dependency run after authentication: the token's client id
  takes a token of its bucket (:mod:`api.rate_limits`), or 429 ``too_many_requests`` with
  ``Retry-After``.

Both count their refusals in ``device_binding_limited_total{limit}``.
"""

import math
from typing import cast

from fastapi import FastAPI, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.dependencies import PrincipalDep
from api.errors import ServiceUnavailable, render
from api.metrics import REQUESTS_IN_FLIGHT
from api.rate_limits import TokenBuckets
from api.rejections import TooManyRequests
from api.request_ids import request_id_of
from api.settings import Settings
from telemetry.limits import CLIENT_RATE, IN_FLIGHT, LIMITED

LIMITED_PREFIX = "/v1/"


class InFlightLimit:
    """Pure ASGI middleware bounding the requests on ``/v1`` in progress at once."""

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_seconds: int) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_seconds = retry_after_seconds
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED_PREFIX):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            LIMITED.labels(IN_FLIGHT).inc()
            refusal = ServiceUnavailable(self.retry_after_seconds)
            await render(refusal, request_id_of(scope))(scope, receive, send)
            return
        self.in_flight += 1
        REQUESTS_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            REQUESTS_IN_FLIGHT.dec()


async def within_client_rate(principal: PrincipalDep, request: Request) -> None:
    """429 unless the caller's client id has a token left."""
    buckets = cast(TokenBuckets, request.app.state.client_rates)
    wait = buckets.take(principal.client_id)
    if wait > 0:
        LIMITED.labels(CLIENT_RATE).inc()
        raise TooManyRequests(math.ceil(wait))


def install_limits(app: FastAPI, settings: Settings) -> None:
    """The client buckets in ``app``'s state and the in-flight bound on its middleware stack
    (the rate is checked by the routes' dependency, :func:`within_client_rate`)."""
    for limit in (CLIENT_RATE, IN_FLIGHT):
        LIMITED.labels(limit)  # shown at 0 before the first refusal
    app.state.client_rates = TokenBuckets(
        settings.client_rate_per_second, settings.client_rate_burst
    )
    app.add_middleware(
        InFlightLimit,
        limit=settings.max_in_flight,
        retry_after_seconds=settings.retry_after_seconds,
    )
