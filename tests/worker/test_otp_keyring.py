"""The OTP keyring (SPEC §9): AES-256-GCM bound to the challenge id, the first key seals and
every key opens; what does not open is None, never an exception; no key in a repr or an
error message."""

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest
from pydantic import SecretStr

from worker.errors import OtpKeysInvalid
from worker.otp_keyring import OtpKeyring, keyring_from, kid_of, new_key_text

DIGEST = hashlib.sha256(b"012345").digest()


def _challenge() -> str:
    return str(uuid.uuid4())


def test_a_sealed_digest_opens_for_its_challenge_and_holds_no_digest_in_clear() -> None:
    keyring = OtpKeyring.parse(new_key_text("k1"))
    challenge = _challenge()

    sealed = keyring.seal(challenge, DIGEST)

    assert DIGEST not in sealed
    assert kid_of(sealed) == "k1"
    assert keyring.open(challenge, sealed) == DIGEST
    # A random nonce per seal: the same digest never seals to the same bytes.
    assert keyring.seal(challenge, DIGEST) != sealed


def test_a_sealed_digest_copied_to_another_challenge_does_not_open() -> None:
    keyring = OtpKeyring.parse(new_key_text("k1"))
    sealed = keyring.seal(_challenge(), DIGEST)

    assert keyring.open(_challenge(), sealed) is None


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda b: b[:-1] + bytes([b[-1] ^ 1]), id="tag-bit-flipped"),
        pytest.param(lambda b: b[:10] + bytes([b[10] ^ 1]) + b[11:], id="nonce-bit-flipped"),
        pytest.param(lambda b: b[:-16], id="truncated"),
        pytest.param(lambda b: b"", id="empty"),
        pytest.param(lambda b: bytes([200]) + b[1:], id="kid-length-past-the-end"),
        pytest.param(lambda b: DIGEST, id="a-digest-in-clear"),
    ],
)
def test_a_tampered_value_does_not_open(damage: object) -> None:
    keyring = OtpKeyring.parse(new_key_text("k1"))
    challenge = _challenge()
    sealed = keyring.seal(challenge, DIGEST)

    assert callable(damage)
    assert keyring.open(challenge, damage(sealed)) is None


def test_rotation_the_first_key_seals_and_every_key_opens() -> None:
    old_item, new_item = new_key_text("old"), new_key_text("new")
    before = OtpKeyring.parse(old_item)
    rotated = OtpKeyring.parse(f"{new_item}, {old_item}")
    challenge = _challenge()
    sealed_before = before.seal(challenge, DIGEST)

    assert rotated.open(challenge, sealed_before) == DIGEST
    assert kid_of(rotated.seal(challenge, DIGEST)) == "new"
    assert rotated.sealing_kid == "new"
    assert rotated.kids == ("new", "old")
    # The old key removed: what it sealed no longer opens.
    assert OtpKeyring.parse(new_item).open(challenge, sealed_before) is None


def test_a_key_of_the_same_kid_but_other_bytes_does_not_open() -> None:
    challenge = _challenge()
    sealed = OtpKeyring.parse(new_key_text("k1")).seal(challenge, DIGEST)

    assert OtpKeyring.parse(new_key_text("k1")).open(challenge, sealed) is None


def test_no_key_in_the_repr() -> None:
    item = new_key_text("k1")
    encoded = item.partition(":")[2]
    keyring = OtpKeyring.parse(item)

    assert repr(keyring) == "OtpKeyring(kids=['k1'])"
    assert encoded not in repr(keyring)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "each item is kid:base64key", id="empty"),
        pytest.param("k1", "each item is kid:base64key", id="no-separator"),
        pytest.param("k1:***", "is not base64", id="not-base64"),
        pytest.param(
            f"k1:{base64.b64encode(b'short').decode()}", "is not 32 bytes", id="short-key"
        ),
        pytest.param("bad kid:" + base64.b64encode(bytes(32)).decode(), "a kid is", id="kid"),
    ],
)
def test_malformed_keys_are_refused_without_quoting_them(text: str, message: str) -> None:
    with pytest.raises(OtpKeysInvalid, match=message) as raised:
        OtpKeyring.parse(text)
    encoded = text.partition(":")[2]
    if encoded:
        assert encoded not in str(raised.value)


def test_a_kid_given_twice_is_refused() -> None:
    key = base64.b64encode(bytes(32)).decode()
    with pytest.raises(OtpKeysInvalid, match="appears twice"):
        OtpKeyring.parse(f"k1:{key},k1:{key}")


@pytest.mark.parametrize("keys", [None, SecretStr(""), SecretStr("  ")])
def test_without_keys_the_worker_has_no_keyring(keys: SecretStr | None) -> None:
    with pytest.raises(OtpKeysInvalid, match="OTP_ENCRYPTION_KEYS is not set"):
        keyring_from(keys)
