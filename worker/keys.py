"""Device public keys, decoded once per process and kept while they are in use.

Decoding and vetting a SEC1 point (on the curve, in range) costs about a fifth of a
verification; a key never changes, so a process decodes it once for every signature the
device makes while the key is in the cache. Keys are kept by key id: the id names exactly
one key for ever. Each process (the worker's event loop, each verification process) has
its own cache, used from one thread.
"""

from collections import OrderedDict

from worker.verify import VerificationKey, prepare_key

# A key object holds about 2 KiB of OpenSSL memory: 10,000 keys are some 20 MiB, enough for
# the devices signing within a few minutes on one worker's partitions.
DEFAULT_CAPACITY = 10_000


class PublicKeys:
    """Decoded keys by key id, the least recently used dropped past capacity."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._capacity = capacity
        self._keys: OrderedDict[str, VerificationKey] = OrderedDict()

    def load(self, key_id: str, public_key_hex: str) -> VerificationKey:
        """The decoded key; raises InvalidPublicKey (and caches nothing) for a bad key."""
        key = self._keys.get(key_id)
        if key is not None:
            self._keys.move_to_end(key_id)
            return key
        key = prepare_key(bytes.fromhex(public_key_hex))
        self._keys[key_id] = key
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return key

    def __len__(self) -> int:
        return len(self._keys)
