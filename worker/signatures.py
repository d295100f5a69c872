"""The signature check the decisions are given: a device's stored key, a digest, a signature."""

from worker.decisions.attempts import SignatureCheck
from worker.errors import InvalidPublicKey, SignatureRejected
from worker.keys import PublicKeys
from worker.state import DeviceState
from worker.verify import verify_digest


def signature_check(keys: PublicKeys) -> SignatureCheck:
    """Verification through the key cache: True when ``signature_hex`` verifies."""

    def verifies(device: DeviceState, digest: bytes, signature_hex: str) -> bool:
        try:
            verify_digest(
                public_key=keys.load(device.key_id, device.public_key),
                digest=digest,
                signature_hex=signature_hex,
            )
        except (SignatureRejected, InvalidPublicKey):
            # A stored key was checked at registration; were it unusable all the same, no
            # signature could verify against it, which is what this outcome says.
            return False
        return True

    return verifies
