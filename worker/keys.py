"""Device public keys, parsed once per worker process and kept while they are in use.

Parsing and validating a SEC1 point (on the curve, in range) costs about as much as the
verification itself; a device's key never changes, so each worker parses it once.
"""

from collections import OrderedDict

from cryptography.hazmat.primitives.asymmetric import ec

from worker.verify import load_public_key

DEFAULT_CAPACITY = 50_000  # about 10 MiB of key objects


class PublicKeys:
    """Loaded keys by their stored hex form, the least recently used dropped past capacity."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, ec.EllipticCurvePublicKey] = OrderedDict()

    def load(self, public_key_hex: str) -> ec.EllipticCurvePublicKey:
        """The key object; raises InvalidPublicKey (and caches nothing) for a bad key."""
        key = self._keys.get(public_key_hex)
        if key is not None:
            self._keys.move_to_end(public_key_hex)
            return key
        key = load_public_key(bytes.fromhex(public_key_hex))
        self._keys[public_key_hex] = key
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._keys)
