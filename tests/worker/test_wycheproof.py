"""Project Wycheproof vectors (ECDSA P-256/SHA-256 and ECDH P-256 keys) against verify.py.

The files are read from ``--wycheproof-dir`` (tests/conftest.py); their origin is in
that folder's README.md. Nothing is copied into this repository. A missing folder or
file fails every test that needs it: a green run must mean the vectors ran.

- DER file: valid vectors verify with the SPKI key, the uncompressed point and the
  digest path; invalid ones are rejected.
- P1363 and WebCrypto files hold raw ``r ‖ s``: every vector is rejected as given (the
  contract is DER). Re-encoded to DER, the 64-byte ones are a second set of cases.
- ECDH file: only its ``public`` SPKI keys. Valid keys load; every other key, "invalid"
  or "acceptable", is refused: the acceptable ones are non-canonical DER, explicit
  curve parameters or a compressed point, all outside SPEC §2.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from worker.errors import InvalidPublicKey, SignatureRejected
from worker.verify import load_public_key, verify_digest, verify_message

DER_FILE = "ecdsa_secp256r1_sha256_test.json"
P1363_FILE = "ecdsa_secp256r1_sha256_p1363_test.json"
WEBCRYPTO_FILE = "ecdsa_secp256r1_webcrypto_test.json"
ECDH_FILE = "ecdh_secp256r1_test.json"

# Test counts from the folder's README: a file swapped or cut short fails loudly.
EXPECTED_TESTS = {DER_FILE: 484, P1363_FILE: 262, WEBCRYPTO_FILE: 252, ECDH_FILE: 612}

T = TypeVar("T")


class VectorsMissing(Exception):
    """The vector folder or a file in it is absent; carried as a parameter, then failed."""


@dataclass(frozen=True)
class SignatureCase:
    tc_id: int
    public_key_der: bytes
    public_key_point: bytes
    message: bytes
    signature_hex: str
    valid: bool


@dataclass(frozen=True)
class KeyCase:
    public_key_der: bytes
    results: frozenset[str]
    flags: frozenset[str]


def _load(folder: Path, name: str) -> Any:
    if not folder.is_dir():
        raise VectorsMissing(
            f"Wycheproof folder {folder} does not exist: pass --wycheproof-dir or set "
            "WYCHEPROOF_DIR (the default is <repo>/../shared/testdata/wycheproof)"
        )
    path = folder / name
    if not path.is_file():
        raise VectorsMissing(f"Wycheproof file {path} does not exist")
    return json.loads(path.read_text(encoding="utf-8"))


def _signature_cases(folder: Path, name: str) -> list[SignatureCase]:
    return [
        SignatureCase(
            tc_id=test["tcId"],
            public_key_der=bytes.fromhex(group["publicKeyDer"]),
            public_key_point=bytes.fromhex(group["publicKey"]["uncompressed"]),
            message=bytes.fromhex(test["msg"]),
            signature_hex=test["sig"],
            valid=test["result"] == "valid",
        )
        for group in _load(folder, name)["testGroups"]
        for test in group["tests"]
    ]


def _reencoded(case: SignatureCase) -> SignatureCase:
    raw = bytes.fromhex(case.signature_hex)
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    return SignatureCase(
        tc_id=case.tc_id,
        public_key_der=case.public_key_der,
        public_key_point=case.public_key_point,
        message=case.message,
        signature_hex=encode_dss_signature(r, s).hex(),
        valid=case.valid,
    )


def _der_params(folder: Path) -> list[Any]:
    return [pytest.param(c, id=f"der-tc{c.tc_id}") for c in _signature_cases(folder, DER_FILE)]


def _raw_params(folder: Path) -> list[Any]:
    return [
        pytest.param(case, id=f"{prefix}-tc{case.tc_id}")
        for prefix, name in (("p1363", P1363_FILE), ("webcrypto", WEBCRYPTO_FILE))
        for case in _signature_cases(folder, name)
    ]


def _reencoded_params(folder: Path) -> list[Any]:
    # Only 64-byte signatures split into r and s; the others are invalid by their size
    # alone (flag SignatureSize) and are covered as given. A valid one of another size
    # is kept, so that it fails here instead of vanishing.
    return [
        pytest.param(_reencoded(case), id=f"{prefix}-der-tc{case.tc_id}")
        for prefix, name in (("p1363", P1363_FILE), ("webcrypto", WEBCRYPTO_FILE))
        for case in _signature_cases(folder, name)
        if case.valid or len(case.signature_hex) == 128
    ]


def _ecdh_key_params(folder: Path) -> list[Any]:
    # Many tests share a public key (with different private keys); each distinct key is
    # one case, named after its first test.
    keys: dict[str, tuple[int, set[str], set[str]]] = {}
    for group in _load(folder, ECDH_FILE)["testGroups"]:
        for test in group["tests"]:
            _, results, flags = keys.setdefault(test["public"], (test["tcId"], set(), set()))
            results.add(test["result"])
            flags.update(test["flags"])
    return [
        pytest.param(
            KeyCase(bytes.fromhex(public), frozenset(results), frozenset(flags)),
            id=f"ecdh-tc{tc_id}",
        )
        for public, (tc_id, results, flags) in keys.items()
    ]


def _file_params(folder: Path) -> list[Any]:
    return [pytest.param((folder, name), id=name) for name in EXPECTED_TESTS]


_PARAMETERS: dict[str, Callable[[Path], list[Any]]] = {
    "der_case": _der_params,
    "raw_case": _raw_params,
    "reencoded_case": _reencoded_params,
    "ecdh_key": _ecdh_key_params,
    "vector_file": _file_params,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    folder = Path(metafunc.config.getoption("--wycheproof-dir"))
    for fixture, build in _PARAMETERS.items():
        if fixture in metafunc.fixturenames:
            try:
                params = build(folder)
            except VectorsMissing as missing:
                # One failing test, not a collection error that would stop the whole
                # session, and never an empty (skipped) parameter set.
                params = [pytest.param(missing, id="vectors-missing")]
            metafunc.parametrize(fixture, params)


def _present(case: T | VectorsMissing) -> T:
    if isinstance(case, VectorsMissing):
        pytest.fail(str(case), pytrace=False)
    return case


def test_vector_file(vector_file: tuple[Path, str]) -> None:
    folder, name = vector_file
    try:
        data = _load(folder, name)
    except VectorsMissing as missing:
        pytest.fail(str(missing), pytrace=False)
    counted = sum(len(group["tests"]) for group in data["testGroups"])
    assert counted == data["numberOfTests"] == EXPECTED_TESTS[name]


def test_der(der_case: SignatureCase | VectorsMissing) -> None:
    case = _present(der_case)
    digest = hashlib.sha256(case.message).digest()
    for key in (case.public_key_der, case.public_key_point):
        if case.valid:
            verified = verify_message(
                public_key=key, message=case.message, signature_hex=case.signature_hex
            )
            assert verified.der.hex() == case.signature_hex
            verify_digest(public_key=key, digest=digest, signature_hex=case.signature_hex)
        else:
            with pytest.raises(SignatureRejected):
                verify_message(
                    public_key=key, message=case.message, signature_hex=case.signature_hex
                )
            with pytest.raises(SignatureRejected):
                verify_digest(public_key=key, digest=digest, signature_hex=case.signature_hex)


def test_raw_r_s_is_rejected_as_given(raw_case: SignatureCase | VectorsMissing) -> None:
    case = _present(raw_case)
    with pytest.raises(SignatureRejected):
        verify_message(
            public_key=case.public_key_der, message=case.message, signature_hex=case.signature_hex
        )


def test_raw_r_s_reencoded_to_der(reencoded_case: SignatureCase | VectorsMissing) -> None:
    case = _present(reencoded_case)
    for key in (case.public_key_der, case.public_key_point):
        if case.valid:
            verify_message(public_key=key, message=case.message, signature_hex=case.signature_hex)
        else:
            with pytest.raises(SignatureRejected):
                verify_message(
                    public_key=key, message=case.message, signature_hex=case.signature_hex
                )


def test_ecdh_public_key(ecdh_key: KeyCase | VectorsMissing) -> None:
    case = _present(ecdh_key)
    if case.results == {"valid"}:
        key = load_public_key(case.public_key_der)
        encoded = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert encoded == case.public_key_der
    else:
        # No key may be valid in one test and not in another.
        assert "valid" not in case.results
        with pytest.raises(InvalidPublicKey):
            load_public_key(case.public_key_der)
