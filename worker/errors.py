"""The worker's errors, all under one root.

    WorkerError
     ├── SignatureRejected   a signature is refused; carries a Reason and a short detail
     ├── InvalidPublicKey    a device key that is not a valid P-256 point
     ├── StoreContention     the state kept changing under a decision (transient: retry)
     └── OtpKeysInvalid      OTP_ENCRYPTION_KEYS missing or malformed (the worker will not start)

``detail`` is for logs and for the developer integrating a device: it names the check
that failed and never carries key material, the message, the OTP or the signature.
"""

from schemas.reasons import Reason


class WorkerError(Exception):
    """Root of every error the worker raises on purpose."""


class SignatureRejected(WorkerError):
    """The signature is not accepted; a normal outcome, turned into a rejection event."""

    def __init__(self, *, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class InvalidPublicKey(WorkerError):
    """The public key is not an acceptable P-256 key (SPEC §2)."""

    def __init__(self, *, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class StoreContention(WorkerError):
    """A decision could not be stored because the state moved; the command is retried."""


class OtpKeysInvalid(WorkerError, ValueError):
    """``OTP_ENCRYPTION_KEYS`` is missing or malformed; the message never quotes a key."""
