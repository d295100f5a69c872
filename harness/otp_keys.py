"""The key that seals OTP digests (``OTP_ENCRYPTION_KEYS``) for everything one harness
process starts: the workers of its stacks and tests, the benchmarks' inline peer, and the
seeds that write pending challenges straight into their stores.

Drawn from the CSPRNG when the process starts and never written anywhere: a run's
databases are thrown away with it. ``make run`` keeps its own under var/ (:mod:`dev.stack`).
"""

from typing import Final

from worker.otp_keyring import OtpKeyring, new_key_text

RUN_OTP_KEYS: Final = new_key_text("run")
RUN_KEYRING: Final = OtpKeyring.parse(RUN_OTP_KEYS)


def otp_environment() -> dict[str, str]:
    """What a worker process reads to seal and open with this run's key."""
    return {"OTP_ENCRYPTION_KEYS": RUN_OTP_KEYS}
