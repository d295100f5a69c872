"""Structured logs: one JSON object per line, with the ids of the work in hand.

The ids (request, command, challenge, trace) come from context variables that the API's
middleware and the worker's handler set for the duration of one request or command, so
every line logged meanwhile carries them without being passed around. What a line never
carries is decided where messages are written: no OTP, token, key or signature is ever
given to a logger (tests read the logs of whole runs to check it).
"""

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

# None rather than a shared empty dict: every change below makes a new dict, never mutates.
_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_context", default=None
)


def _fields() -> dict[str, str]:
    return _CONTEXT.get() or {}


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Adds ``fields`` (those not None) to every line logged within the block."""
    token = _CONTEXT.set({**_fields(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind_log_context(**fields: str | None) -> None:
    """Adds ``fields`` for the rest of the current task (an ASGI request, say)."""
    _CONTEXT.set({**_fields(), **{k: v for k, v in fields.items() if v}})


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_fields())
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            line["trace_id"] = format(span.trace_id, "032x")
            line["span_id"] = format(span.span_id, "016x")
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(service: str, level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process, uvicorn's and aiokafka's loggers included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn installs its own handlers unless told not to; ours format every line.
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
