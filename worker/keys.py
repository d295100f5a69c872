"""Device public keys, parsed once per worker process and kept while they are in use.

Parsing and validating a SEC1 point (on the curve, in range) costs about a fifth of the
verification; a device's key never changes, so a worker parses it once for all the
attempts the device makes while it is in the cache.
"""

import threading
from collections import OrderedDict

from cryptography.hazmat.primitives.asymmetric import ec

from worker.verify import load_public_key

# A device's attempts come within the challenge's few minutes, and most devices bind at the
# first: a small cache catches the retries. A key object holds about 2 KiB of OpenSSL memory,
# so caching every device of a 50,000-command backlog cost a worker about 100 MiB.
DEFAULT_CAPACITY = 2_000


class PublicKeys:
    """Loaded keys by their stored hex form, the least recently used dropped past capacity."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, ec.EllipticCurvePublicKey] = OrderedDict()
        # Batches are decided on threads (SQLite's, see Store.decide_attempts).
        self._lock = threading.Lock()

    def load(self, public_key_hex: str) -> ec.EllipticCurvePublicKey:
        """The key object; raises InvalidPublicKey (and caches nothing) for a bad key."""
        with self._lock:
            key = self._keys.get(public_key_hex)
            if key is not None:
                self._keys.move_to_end(public_key_hex)
                return key
        key = load_public_key(bytes.fromhex(public_key_hex))
        with self._lock:
            self._keys[public_key_hex] = key
            if len(self._keys) > self._capacity:
                self._keys.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._keys)
