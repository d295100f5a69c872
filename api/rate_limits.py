"""Per-client token buckets: how many requests a client may make, per replica (SPEC §9).

Each client id has a bucket holding at most ``burst`` tokens, refilled continuously at
``rate`` per second; a request takes one token, or is refused with the time until one is
there. Pure: no I/O, no framework, the clock given (:mod:`api.limits` wires it to requests).

The limit is per replica: N replicas behind a load balancer let a client through at up to N
times the rate. What it bounds is one client starving the others on a replica; a client's
total is bounded by the person limits the workers keep.

Memory is bounded by ``max_clients`` buckets. Client ids come from verified tokens, so the
set is the identity provider's clients; past the bound the bucket used least recently is
forgotten. A bucket idle for ``burst / rate`` seconds is full again, the same as a new one,
so forgetting it changes nothing unless more than ``max_clients`` clients are active within
that time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

DEFAULT_MAX_CLIENTS: Final = 10_000
# Refill is computed in floating point: a token that is 1e-13 short is there.
_EPSILON: Final = 1e-9


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """A token bucket per client id."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be positive, burst and max_clients at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._max_clients = max_clients
        # Least recently used first.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client_id: str) -> float:
        """Take a token of ``client_id``'s bucket: 0.0 if there was one, otherwise the
        seconds until there is one (nothing taken)."""
        now = self._clock()
        bucket = self._buckets.get(client_id)
        if bucket is None:
            if len(self._buckets) >= self._max_clients:
                self._buckets.popitem(last=False)
            bucket = self._buckets[client_id] = _Bucket(tokens=self._burst, updated=now)
        else:
            self._buckets.move_to_end(client_id)
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
            bucket.updated = now
        if bucket.tokens >= 1.0 - _EPSILON:
            bucket.tokens = max(0.0, bucket.tokens - 1.0)
            return 0.0
        return (1.0 - bucket.tokens) / self._rate
