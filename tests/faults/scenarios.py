"""The scenarios of the fault suite's load: each a few calls on one device, with the answers
SPEC §3-4 (binding) and §8 (device signing) prescribe, and the mix a run draws them from.

The mix is what a bank's app does: registrations (some retried with their
``Idempotency-Key``), correct and wrong signatures, identical retries, lock-outs, second
signatures after success, signatures for unknown challenges; and, on devices it has bound,
logins signed by the device the same ways.
"""

from __future__ import annotations

import uuid

from schemas.challenges import MAX_FAILED_ATTEMPTS
from tests.faults.driver import Device, LoadDriver, Scenario, Signing

INVALID = (403, "invalid_signature")

# Binding (SPEC §3-4)


async def bind(driver: LoadDriver, device: Device) -> None:
    """Correct signature, then the same bytes again (a retry after a lost answer)."""
    if not await driver.register(device):
        return
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)
    await driver.put(device, "identical_retry", signature, correct=True, expected=(204, None))


async def fail_then_bind(driver: LoadDriver, device: Device) -> None:
    """One to three wrong signatures (the last repeated identically), then the right one."""
    if not await driver.register(device):
        return
    wrong = ""
    for _ in range(driver.rng.randint(1, 3)):
        wrong, _ = await driver.sign(device, correct=False)
        await driver.put(device, "wrong", wrong, correct=False, expected=INVALID)
    # Not counted again: the stored outcome answers.
    await driver.put(device, "identical_retry", wrong, correct=False, expected=INVALID)
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)


async def lockout(driver: LoadDriver, device: Device) -> None:
    """Five wrong signatures lock the challenge; the right one is then refused."""
    if not await driver.register(device):
        return
    first = ""
    for _ in range(MAX_FAILED_ATTEMPTS):
        wrong, _ = await driver.sign(device, correct=False)
        first = first or wrong
        await driver.put(device, "wrong", wrong, correct=False, expected=INVALID)
    signature, _ = await driver.sign(device, correct=True)
    await driver.put(
        device, "correct_after_lock", signature, correct=True, expected=(409, "challenge_locked")
    )
    await driver.put(device, "identical_retry", first, correct=False, expected=INVALID)


async def already_verified(driver: LoadDriver, device: Device) -> None:
    """After success, another correct signature (different bytes) is refused."""
    if not await driver.register(device):
        return
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)
    again, _ = await driver.sign(device, correct=True)
    await driver.put(
        device, "second_correct", again, correct=True, expected=(409, "challenge_already_verified")
    )


async def registration_retry(driver: LoadDriver, device: Device) -> None:
    """The registration sent twice under one ``Idempotency-Key`` is one device, one OTP."""
    if not await driver.register(device):
        return
    if not await driver.register(device, label="register_retry"):
        return
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)


async def unknown_challenge(driver: LoadDriver, device: Device) -> None:
    """A signature for a challenge that does not exist."""
    device.challenge_id = str(uuid.uuid4())
    signature = device.key.sign("123456")
    await driver.put(device, "unknown", signature, correct=False, expected=(404, "not_found"))


# Device signing on a bound device (SPEC §8)


async def _signing(driver: LoadDriver, device: Device) -> Signing | None:
    """The device bound (register, sign the OTP), then a device challenge opened for it."""
    if not await driver.register(device):
        return None
    signature, otp = await driver.sign(device, correct=True)
    await driver.put(device, "correct", signature, correct=True, expected=(204, None), otp=otp)
    if not device.bound:
        return None  # its binding went otherwise, which the checks of binding judge
    return await driver.open_signing(device)


async def _sign_correctly(
    driver: LoadDriver, device: Device, signing: Signing, *, retry: bool = False
) -> None:
    signature = driver.device_signature(device, signing, correct=True)
    await driver.put_signing(signing, "signed", signature, correct=True, expected=(204, None))
    if retry:
        await driver.put_signing(
            signing, "signed_retry", signature, correct=True, expected=(204, None)
        )


async def sign_in(driver: LoadDriver, device: Device) -> None:
    """A login signed (and the same bytes again), then a second login on the same device,
    its opening retried under its ``Idempotency-Key``; the binding challenge's id is no
    device challenge."""
    signing = await _signing(driver, device)
    if signing is None:
        return
    await _sign_correctly(driver, device, signing, retry=True)
    second = await driver.open_signing(device, label="open_second")
    if second is not None:
        # The app retries the opening (its answer was lost): the same challenge again.
        await driver.open_signing(device, label="open_retry", again=second)
        await _sign_correctly(driver, device, second)
    assert device.challenge_id is not None
    wrong_route = Signing(device.challenge_id, "")
    signature = driver.device_signature(device, signing, correct=True)
    await driver.put_signing(
        wrong_route, "binding_id", signature, correct=False, expected=(404, "not_found")
    )


async def sign_after_failures(driver: LoadDriver, device: Device) -> None:
    """One to three wrong device signatures (the last repeated identically), then the
    right one."""
    signing = await _signing(driver, device)
    if signing is None:
        return
    wrong = ""
    for _ in range(driver.rng.randint(1, 3)):
        wrong = driver.device_signature(device, signing, correct=False)
        await driver.put_signing(signing, "signed_wrong", wrong, correct=False, expected=INVALID)
    await driver.put_signing(signing, "signed_retry", wrong, correct=False, expected=INVALID)
    await _sign_correctly(driver, device, signing)


async def signing_lockout(driver: LoadDriver, device: Device) -> None:
    """Five wrong device signatures lock the device challenge; the right one is refused."""
    signing = await _signing(driver, device)
    if signing is None:
        return
    first = ""
    for _ in range(MAX_FAILED_ATTEMPTS):
        wrong = driver.device_signature(device, signing, correct=False)
        first = first or wrong
        await driver.put_signing(signing, "signed_wrong", wrong, correct=False, expected=INVALID)
    right = driver.device_signature(device, signing, correct=True)
    await driver.put_signing(
        signing, "signed_after_lock", right, correct=True, expected=(409, "challenge_locked")
    )
    await driver.put_signing(signing, "signed_retry", first, correct=False, expected=INVALID)


async def signing_already_verified(driver: LoadDriver, device: Device) -> None:
    """After a verified device signature, another correct one (other bytes) is refused."""
    signing = await _signing(driver, device)
    if signing is None:
        return
    await _sign_correctly(driver, device, signing)
    again = driver.device_signature(device, signing, correct=True)
    await driver.put_signing(
        signing,
        "signed_again",
        again,
        correct=True,
        expected=(409, "challenge_already_verified"),
    )


async def signing_unknown(driver: LoadDriver, device: Device) -> None:
    """A device signature for a device challenge that does not exist."""
    signing = Signing(str(uuid.uuid4()), '{"nonce":"00"}')
    signature = driver.device_signature(device, signing, correct=True)
    await driver.put_signing(
        signing, "signed_unknown", signature, correct=False, expected=(404, "not_found")
    )


# What a run draws from, by weight: binding alone, and device signing after binding (about a
# third of the requests are then device signing).
DEFAULT_MIX: dict[Scenario, int] = {
    bind: 3,
    fail_then_bind: 3,
    lockout: 1,
    already_verified: 2,
    registration_retry: 2,
    unknown_challenge: 1,
    sign_in: 3,
    sign_after_failures: 3,
    signing_lockout: 1,
    signing_already_verified: 2,
    signing_unknown: 1,
}
