"""Device public keys, decoded once per worker process and kept while they are in use.

Decoding and validating a SEC1 point (on the curve, in range) costs about a tenth of a
verification; a key never changes, so a worker decodes it once for every signature the
device makes while the key is in the cache. Keys are kept by key id: the id names exactly
one key for ever.
"""

import threading
from collections import OrderedDict

from cryptography.hazmat.primitives.asymmetric import ec

from worker.verify import load_public_key

# A key object holds about 2 KiB of OpenSSL memory: 10,000 keys are some 20 MiB, enough for
# the devices signing within a few minutes on one worker's partitions.
DEFAULT_CAPACITY = 10_000


class PublicKeys:
    """Decoded keys by key id, the least recently used dropped past capacity."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, ec.EllipticCurvePublicKey] = OrderedDict()
        # Decisions run on a store's thread while registrations warm the cache on the loop.
        self._lock = threading.Lock()

    def load(self, key_id: str, public_key_hex: str) -> ec.EllipticCurvePublicKey:
        """The key object; raises InvalidPublicKey (and caches nothing) for a bad key."""
        with self._lock:
            key = self._keys.get(key_id)
            if key is not None:
                self._keys.move_to_end(key_id)
                return key
        key = load_public_key(bytes.fromhex(public_key_hex))
        with self._lock:
            self._keys[key_id] = key
            if len(self._keys) > self._capacity:
                self._keys.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._keys)
