"""The server span of each HTTP request, continuing the caller's trace if it sent one."""

from opentelemetry.trace import SpanKind, StatusCode
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.tracing import context_from_headers, tracer


class TracingMiddleware:
    """Pure ASGI middleware; named by method only, as the route is not known before routing
    (the metrics carry the route template)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parent = context_from_headers(dict(Headers(scope=scope)))
        with tracer().start_as_current_span(
            f"HTTP {scope['method']}", context=parent, kind=SpanKind.SERVER
        ) as span:

            async def send_recording_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.set_status(StatusCode.ERROR)
                await send(message)

            span.set_attribute("http.request.method", scope["method"])
            await self.app(scope, receive, send_recording_status)
