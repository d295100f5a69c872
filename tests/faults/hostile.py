"""The hostile requests the API must refuse by itself (SPEC §2, §3): each answered with its
status and error body before anything is published, so nothing reaches Kafka or the store.

``{challenge}`` and ``{device}`` in a path stand for a real, pending challenge and device of
the requesting client; the cases that do reach a worker are in test_hostile_inputs.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from api.dependencies import MAX_BODY_BYTES
from schemas.fields import MAX_DEVICE_DATA_BYTES
from tests.api.requests import SIGNATURE, device_key_hex, off_curve_key_hex

Auth = Literal["valid", "none", "no-scope", "wrong-audience", "garbage"]

CHALLENGE = "/v1/mfa/challenges/signatures/{challenge}"
DEVICES = "/v1/mfa/devices"
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Hostile:
    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    code: str
    # For 400: the field the detail must name. For 401/403: `source.field`.
    field: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(JSON))
    auth: Auth = "valid"


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _point(key: ec.EllipticCurvePublicKey, form: serialization.PublicFormat) -> str:
    return key.public_bytes(serialization.Encoding.X962, form).hex()


def _registration(key: str, **extra: object) -> dict[str, object]:
    return {"person_id": "person-hostile", "key_type": "ecdsa-p256", "key": key, **extra}


def _keys() -> dict[str, str]:
    """Keys of every wrong kind, each given where a P-256 SEC1 point belongs."""
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    uncompressed = serialization.PublicFormat.UncompressedPoint
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return {
        "p384": _point(ec.generate_private_key(ec.SECP384R1()).public_key(), uncompressed),
        # 65 bytes starting 04, like a P-256 point: only the curve equation tells them apart.
        "secp256k1": _point(ec.generate_private_key(ec.SECP256K1()).public_key(), uncompressed),
        "compressed": _point(p256, serialization.PublicFormat.CompressedPoint),
        "off-curve": off_curve_key_hex(),
        "infinity": "00",
        "zero-point": "04" + "00" * 64,
        "rsa-spki": rsa_key.public_bytes(der, spki).hex(),
        # A valid P-256 key, but as SubjectPublicKeyInfo: registration takes the SEC1 point.
        "p256-spki": p256.public_bytes(der, spki).hex(),
        "0x-prefix": "0x" + device_key_hex(),
        "inner-space": device_key_hex()[:64] + " " + device_key_hex()[64:],
        # x and y above the field prime p: 04 ff..ff ff..ff.
        "coordinates-above-p": "04" + "ff" * 64,
    }


def cases() -> list[Hostile]:
    keys = _keys()
    good_key = device_key_hex()
    sig_body = _json({"signature": SIGNATURE})
    huge_padding = "x" * MAX_BODY_BYTES
    table = [
        # --- PUT /v1/mfa/challenges/signatures/{id}: the body -----------------------------
        Hostile(
            "put-malformed-json",
            "PUT",
            CHALLENGE,
            b'{"signature": "30',
            400,
            "validation_error",
            "body",
        ),
        Hostile(
            "put-trailing-garbage",
            "PUT",
            CHALLENGE,
            sig_body + b" {}",
            400,
            "validation_error",
            "body",
        ),
        # Duplicate keys: JSON allows them; the API reads the last one (as the JSON parser of
        # the model does, once), so a valid first value cannot smuggle an invalid last one.
        Hostile(
            "put-duplicate-key-last-invalid",
            "PUT",
            CHALLENGE,
            b'{"signature": "%s", "signature": "zz"}' % SIGNATURE.encode(),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-form-encoded",
            "PUT",
            CHALLENGE,
            b"signature=" + SIGNATURE.encode(),
            400,
            "validation_error",
            "body",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        Hostile(
            "put-text-plain-not-json",
            "PUT",
            CHALLENGE,
            SIGNATURE.encode(),
            400,
            "validation_error",
            "body",
            headers={"Content-Type": "text/plain"},
        ),
        Hostile(
            "put-utf16-body",
            "PUT",
            CHALLENGE,
            '{"signature": "ab"}'.encode("utf-16"),
            400,
            "validation_error",
            "body",
        ),
        Hostile(
            "put-body-over-64KiB",
            "PUT",
            CHALLENGE,
            _json({"signature": SIGNATURE, "pad": huge_padding}),
            400,
            "validation_error",
            "body",
        ),
        Hostile(
            "put-signature-over-64KiB",
            "PUT",
            CHALLENGE,
            _json({"signature": "ab" * (MAX_BODY_BYTES // 2)}),
            400,
            "validation_error",
            "body",
        ),
        # Past the JSON parser's nesting limit: refused as not JSON, without a RecursionError.
        Hostile(
            "put-deeply-nested",
            "PUT",
            CHALLENGE,
            b'{"signature": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            400,
            "validation_error",
            "body",
        ),
        # NaN is not JSON; the parser reads it as a number, refused as not a string all the same.
        Hostile(
            "put-nan", "PUT", CHALLENGE, b'{"signature": NaN}', 400, "validation_error", "signature"
        ),
        # --- the signature's spelling (SPEC §2: hex only, either case, nothing else) ------
        Hostile(
            "put-sig-inner-whitespace",
            "PUT",
            CHALLENGE,
            _json({"signature": SIGNATURE[:70] + "\t" + SIGNATURE[70:]}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-sig-0x",
            "PUT",
            CHALLENGE,
            _json({"signature": "0X" + SIGNATURE}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-sig-base64",
            "PUT",
            CHALLENGE,
            _json({"signature": "MEUCIQC9vr2LpeTqI6SrPYUsvwlozLxzGcfEOIjlS/NOiW0Z2A=="}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-sig-longer-than-144",
            "PUT",
            CHALLENGE,
            _json({"signature": "30" * 73}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-sig-null-byte",
            "PUT",
            CHALLENGE,
            _json({"signature": SIGNATURE[:10] + "\x00" + SIGNATURE[10:]}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-sig-fullwidth-digits",
            "PUT",
            CHALLENGE,
            _json({"signature": "\uff13\uff10" + SIGNATURE[2:]}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-sig-odd-length",
            "PUT",
            CHALLENGE,
            _json({"signature": SIGNATURE + "0"}),
            400,
            "validation_error",
            "signature",
        ),
        Hostile(
            "put-device-data-over-8KiB",
            "PUT",
            CHALLENGE,
            _json({"signature": SIGNATURE, "device_data": "d" * (MAX_DEVICE_DATA_BYTES + 1)}),
            400,
            "validation_error",
            "device_data",
        ),
        Hostile(
            "put-otp-field",
            "PUT",
            CHALLENGE,
            _json({"signature": SIGNATURE, "otp": "1"}),
            400,
            "validation_error",
            "otp",
        ),
        # --- the path id: nothing but a UUID names a challenge (404, like an unknown one) -
        Hostile(
            "put-path-traversal-encoded",
            "PUT",
            "/v1/mfa/challenges/signatures/..%2F..%2Fdevices",
            sig_body,
            404,
            "not_found",
        ),
        Hostile(
            "put-path-dot-dot-encoded",
            "PUT",
            "/v1/mfa/challenges/signatures/%2e%2e",
            sig_body,
            404,
            "not_found",
        ),
        Hostile(
            "put-oversized-id",
            "PUT",
            "/v1/mfa/challenges/signatures/" + "a" * 4096,
            sig_body,
            404,
            "not_found",
        ),
        Hostile("put-id-null-byte", "PUT", CHALLENGE + "%00", sig_body, 404, "not_found"),
        Hostile(
            "put-id-sql",
            "PUT",
            "/v1/mfa/challenges/signatures/1'%20OR%20'1'='1",
            sig_body,
            404,
            "not_found",
        ),
        # --- who and how ------------------------------------------------------------------
        Hostile(
            "put-no-token",
            "PUT",
            CHALLENGE,
            sig_body,
            401,
            "unauthorized",
            "Authorization",
            auth="none",
        ),
        Hostile(
            "put-garbage-token",
            "PUT",
            CHALLENGE,
            sig_body,
            401,
            "unauthorized",
            "Authorization",
            auth="garbage",
        ),
        Hostile(
            "put-token-for-another-audience",
            "PUT",
            CHALLENGE,
            sig_body,
            401,
            "unauthorized",
            "Authorization",
            auth="wrong-audience",
        ),
        Hostile(
            "put-token-without-scope",
            "PUT",
            CHALLENGE,
            sig_body,
            403,
            "insufficient_scope",
            "Authorization",
            auth="no-scope",
        ),
        # Authentication comes first: a stranger's malformed body is still a 401.
        Hostile(
            "put-no-token-malformed-body",
            "PUT",
            CHALLENGE,
            b"{",
            401,
            "unauthorized",
            "Authorization",
            auth="none",
        ),
        Hostile("post-to-challenge", "POST", CHALLENGE, sig_body, 405, "method_not_allowed"),
        Hostile("patch-challenge", "PATCH", CHALLENGE, sig_body, 405, "method_not_allowed"),
        Hostile("delete-challenge", "DELETE", CHALLENGE, None, 405, "method_not_allowed"),
        # --- POST /v1/mfa/devices ---------------------------------------------------------
        Hostile(
            "post-malformed-json",
            "POST",
            DEVICES,
            b'{"person_id": ',
            400,
            "validation_error",
            "body",
        ),
        Hostile(
            "post-duplicate-key-last-invalid",
            "POST",
            DEVICES,
            _json(_registration(good_key))[:-1] + b', "key": "04"}',
            400,
            "validation_error",
            "key",
        ),
        Hostile(
            "post-form-encoded",
            "POST",
            DEVICES,
            b"person_id=p&key_type=ecdsa-p256&key=" + good_key.encode(),
            400,
            "validation_error",
            "body",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        Hostile(
            "post-body-over-64KiB",
            "POST",
            DEVICES,
            _json(_registration(good_key, device_data="d" * MAX_BODY_BYTES)),
            400,
            "validation_error",
            "body",
        ),
        Hostile(
            "post-device-data-over-8KiB",
            "POST",
            DEVICES,
            _json(_registration(good_key, device_data="d" * (MAX_DEVICE_DATA_BYTES + 1))),
            400,
            "validation_error",
            "device_data",
        ),
        Hostile(
            "post-key-type-upper-case",
            "POST",
            DEVICES,
            _json({**_registration(good_key), "key_type": "ECDSA-P256"}),
            400,
            "validation_error",
            "key_type",
        ),
        Hostile(
            "post-key-type-p384",
            "POST",
            DEVICES,
            _json({**_registration(keys["p384"]), "key_type": "ecdsa-p384"}),
            400,
            "validation_error",
            "key_type",
        ),
        *[
            Hostile(
                f"post-key-{kind}",
                "POST",
                DEVICES,
                _json(_registration(key)),
                400,
                "validation_error",
                "key",
            )
            for kind, key in keys.items()
        ],
        # Unicode in person_id: 129 code points are too many, however they render.
        Hostile(
            "post-person-combining-marks",
            "POST",
            DEVICES,
            _json(_registration(good_key, person_id="e" + "\u0301" * 128)),
            400,
            "validation_error",
            "person_id",
        ),
        Hostile(
            "post-person-lone-surrogate",
            "POST",
            DEVICES,
            _json(_registration(good_key))[:-1] + b', "person_id": "\\ud800"}',
            400,
            "validation_error",
            "body",
        ),
        Hostile(
            "post-person-invalid-utf8",
            "POST",
            DEVICES,
            b'{"person_id": "\xff\xfe", "key_type": "ecdsa-p256", "key": "%s"}' % good_key.encode(),
            400,
            "validation_error",
            "body",
        ),
        # A NUL in an identifier is no person's id, and PostgreSQL text cannot hold it: it
        # must be refused here, not fail in the worker's store.
        Hostile(
            "post-person-null-byte",
            "POST",
            DEVICES,
            _json(_registration(good_key, person_id="person\x00hostile")),
            400,
            "validation_error",
            "person_id",
        ),
        Hostile(
            "post-idempotency-key-invalid",
            "POST",
            DEVICES,
            _json(_registration(good_key)),
            400,
            "validation_error",
            "Idempotency-Key",
            headers={**JSON, "Idempotency-Key": "../../etc/passwd"},
        ),
        Hostile(
            "post-no-token",
            "POST",
            DEVICES,
            _json(_registration(good_key)),
            401,
            "unauthorized",
            "Authorization",
            auth="none",
        ),
        Hostile(
            "put-devices-collection",
            "PUT",
            DEVICES,
            _json(_registration(good_key)),
            405,
            "method_not_allowed",
        ),
        Hostile(
            "patch-device", "PATCH", "/v1/mfa/devices/{device}", b"{}", 405, "method_not_allowed"
        ),
        Hostile(
            "get-device-oversized-id",
            "GET",
            "/v1/mfa/devices/" + "f" * 4096,
            None,
            404,
            "not_found",
        ),
    ]
    names = [case.name for case in table]
    assert len(names) == len(set(names)), "case names must be unique"
    return table
