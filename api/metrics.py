"""The API's Prometheus metrics, served at ``GET /metrics`` on the admin port (api/admin.py).

Labels are bounded: the route is the matched path template (``/v1/mfa/devices/{id}``), never
the raw path, and requests no route matched share the label ``unmatched``.
"""

import time

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds; spans the reply wait (5 s by default) with room on both sides.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "device_binding_http_requests_total",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "device_binding_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
COMMAND_PUBLISH_LATENCY = Histogram(
    "device_binding_command_publish_duration_seconds",
    "Time for Kafka to acknowledge a command (acks=all), by command type and result",
    ["type", "result"],
    buckets=_LATENCY_BUCKETS,
)
REPLY_WAIT = Histogram(
    "device_binding_reply_wait_seconds",
    "From a command's acknowledgement to its worker's reply, by type and outcome "
    "(ok, rejected, timeout)",
    ["type", "outcome"],
    buckets=_LATENCY_BUCKETS,
)

REQUESTS_IN_FLIGHT = Gauge(
    "device_binding_http_requests_in_flight",
    "Requests on /v1 being served by this replica now (bounded by MAX_IN_FLIGHT)",
)
# Refusals by limit (client_rate, in_flight here): telemetry.limits.LIMITED, shared with the
# workers' limits.

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _route_of(scope: Scope) -> str:
    # FastAPI records the route it matched in the (shared) scope while routing.
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before responding

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            route, method = _route_of(scope), scope["method"]
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_LATENCY.labels(route, method).observe(time.perf_counter() - started)
