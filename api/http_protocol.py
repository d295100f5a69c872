"""uvicorn's httptools protocol with the two bounds it lacks: the size of a request head and
the time a request may take to arrive.

httptools (llhttp) accepts a request head of any size, holding it all in memory, and uvicorn
gives a request no deadline: a client that sends its head or body a byte at a time keeps its
connection, and a slot of ``limit_concurrency``, for ever (its keep-alive timeout applies
only between requests, and is cancelled by every byte received). uvicorn's own bound on a
head, ``h11_max_incomplete_event_size``, applies only to its slower h11 parser.

:func:`bounded_protocol` gives the class to pass as uvicorn's ``http``:

- a request head (request line and header fields) longer than ``max_head_bytes`` is answered
  431 and the connection closed, before the parser holds more of it;
- a request (head and body) that has not arrived whole ``read_timeout_seconds`` after the
  connection opened, or after the answer to the one before, has its connection closed.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Requests carry a bearer token of at most 8 KiB (api/auth.py) and a few short headers.
MAX_HEAD_BYTES: Final = 32 * 1024
READ_TIMEOUT_SECONDS: Final = 10.0

_TOO_LARGE: Final = b"Request head too large."


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    max_head_bytes: ClassVar[int] = MAX_HEAD_BYTES
    read_timeout_seconds: ClassVar[float] = READ_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # A head is fed only up to what may remain of it: if it has not ended there, the
        # rest is not parsed, and so not held.
        while data and not self.transport.is_closing():
            if self._reading_head:
                room = self.max_head_bytes - self._head_bytes
                if room <= 0:
                    self._refuse_head()
                    return
                part, data = data[:room], data[room:]
                self._head_bytes += len(part)
            else:
                part, data = data, b""
            super().data_received(part)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        # What follows is the next request's head.
        self._reading_head, self._head_bytes = True, 0
        if self.cycle is None or self.cycle.response_complete:
            # Answered before its body had arrived: the next request is awaited now.
            self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm()

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.read_timeout_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        self.logger.warning("Request head longer than %d bytes refused.", self.max_head_bytes)
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\n"
            b"connection: close\r\n"
            b"\r\n%s" % (len(_TOO_LARGE), _TOO_LARGE)
        )
        self.transport.close()


def bounded_protocol(
    *, max_head_bytes: int = MAX_HEAD_BYTES, read_timeout_seconds: float = READ_TIMEOUT_SECONDS
) -> type[BoundedHttpToolsProtocol]:
    """The protocol class with these bounds, for ``uvicorn.Config(http=...)``."""
    return type(
        "BoundedHttpToolsProtocol",
        (BoundedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "read_timeout_seconds": read_timeout_seconds},
    )
