"""The hostile requests the API must refuse by itself (SPEC §2, §3): each answered with its
status and error body before anything is published, so nothing reaches Kafka or the store.

``{challenge}`` and ``{device}`` in a path stand for a real, pending challenge and device of
the requesting client; the cases that do reach a worker are in test_hostile_inputs.py.
"""

# Tables of one case per line are wider than the line limit, and easier to read so.
# ruff: noqa: E501

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
    """Every case, from the tables below: one line each, what is sent and what must come
    back."""
    keys = _keys()
    good = device_key_hex()
    sig = _json({"signature": SIGNATURE})
    registration = _json(_registration(good))
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    # fmt: off
    # PUT /v1/mfa/challenges/signatures/{challenge}: 400 validation_error, naming the field.
    put_bodies: list[tuple[str, bytes, str, Mapping[str, str]]] = [
        # name                              body                                                      field       headers
        ("put-malformed-json",              b'{"signature": "30',                                    "body",      JSON),
        ("put-trailing-garbage",            sig + b" {}",                                            "body",      JSON),
        # JSON allows duplicate keys; the last one is read (as the model's parser reads it,
        # once), so a valid first value cannot smuggle an invalid last one.
        ("put-duplicate-key-last-invalid",  b'{"signature": "%s", "signature": "zz"}' % SIGNATURE.encode(), "signature", JSON),
        ("put-utf16-body",                  '{"signature": "ab"}'.encode("utf-16"),                  "body",      JSON),
        ("put-body-over-64KiB",             _json({"signature": SIGNATURE, "pad": "x" * MAX_BODY_BYTES}), "body", JSON),
        ("put-signature-over-64KiB",        _json({"signature": "ab" * (MAX_BODY_BYTES // 2)}),      "body",      JSON),
        # Past the JSON parser's nesting limit: refused as not JSON, without a RecursionError.
        ("put-deeply-nested",               b'{"signature": ' + b"[" * 5000 + b"]" * 5000 + b"}",    "body",      JSON),
        # NaN is not JSON; read as a number, refused as not a string all the same.
        ("put-nan",                         b'{"signature": NaN}',                                   "signature", JSON),
        # The signature's spelling (SPEC §2): hex only, either case, nothing else.
        ("put-sig-inner-whitespace",        _json({"signature": SIGNATURE[:70] + "\t" + SIGNATURE[70:]}), "signature", JSON),
        ("put-sig-0x",                      _json({"signature": "0X" + SIGNATURE}),                  "signature", JSON),
        ("put-sig-base64",                  _json({"signature": "MEUCIQC9vr2LpeTqI6SrPYUsvwlozLxzGcfEOIjlS/NOiW0Z2A=="}), "signature", JSON),
        ("put-sig-longer-than-144",         _json({"signature": "30" * 73}),                         "signature", JSON),
        ("put-sig-null-byte",               _json({"signature": SIGNATURE[:10] + "\x00" + SIGNATURE[10:]}), "signature", JSON),
        ("put-sig-fullwidth-digits",        _json({"signature": "\uff13\uff10" + SIGNATURE[2:]}),  "signature", JSON),
        ("put-sig-odd-length",              _json({"signature": SIGNATURE + "0"}),                   "signature", JSON),
        ("put-device-data-over-8KiB",       _json({"signature": SIGNATURE, "device_data": "d" * (MAX_DEVICE_DATA_BYTES + 1)}), "device_data", JSON),
        ("put-otp-field",                   _json({"signature": SIGNATURE, "otp": "1"}),             "otp",       JSON),
    ]
    # POST /v1/mfa/devices: 400 validation_error, naming the field.
    post_bodies: list[tuple[str, bytes, str, Mapping[str, str]]] = [
        # name                              body                                                      field       headers
        ("post-malformed-json",             b'{"person_id": ',                                       "body",      JSON),
        ("post-duplicate-key-last-invalid", registration[:-1] + b', "key": "04"}',                   "key",       JSON),
        ("post-body-over-64KiB",            _json(_registration(good, device_data="d" * MAX_BODY_BYTES)), "body", JSON),
        ("post-device-data-over-8KiB",      _json(_registration(good, device_data="d" * (MAX_DEVICE_DATA_BYTES + 1))), "device_data", JSON),
        ("post-key-type-upper-case",        _json({**_registration(good), "key_type": "ECDSA-P256"}), "key_type", JSON),
        ("post-key-type-p384",              _json({**_registration(keys["p384"]), "key_type": "ecdsa-p384"}), "key_type", JSON),
        *[(f"post-key-{kind}",              _json(_registration(key)),                               "key",       JSON) for kind, key in keys.items()],
        # Unicode in person_id: 129 code points are too many, however they render.
        ("post-person-combining-marks",     _json(_registration(good, person_id="e" + "\u0301" * 128)), "person_id", JSON),
        ("post-person-lone-surrogate",      registration[:-1] + b', "person_id": "\\ud800"}',         "body",      JSON),
        ("post-person-invalid-utf8",        b'{"person_id": "\xff\xfe", "key_type": "ecdsa-p256", "key": "%s"}' % good.encode(), "body", JSON),
        # A NUL in an identifier is no person's id, and PostgreSQL text cannot hold it: it must
        # be refused here, not fail in the worker's store.
        ("post-person-null-byte",           _json(_registration(good, person_id="person\x00hostile")), "person_id", JSON),
        ("post-idempotency-key-invalid",    registration,                                            "Idempotency-Key", {**JSON, "Idempotency-Key": "../../etc/passwd"}),
    ]
    # Requests refused whole: the path names nothing, the method is not served, the caller
    # is not authenticated or authorised (authentication first: a stranger's malformed body
    # is still a 401).
    refused: list[tuple[str, str, str, bytes | None, int, str, str | None, Auth]] = [
        # name                            method    path                                                  body      status code                  field            auth
        ("put-path-traversal-encoded",    "PUT",    "/v1/mfa/challenges/signatures/..%2F..%2Fdevices",    sig,      404, "not_found",            None,            "valid"),
        ("put-path-dot-dot-encoded",      "PUT",    "/v1/mfa/challenges/signatures/%2e%2e",               sig,      404, "not_found",            None,            "valid"),
        ("put-oversized-id",              "PUT",    "/v1/mfa/challenges/signatures/" + "a" * 4096,        sig,      404, "not_found",            None,            "valid"),
        ("put-id-null-byte",              "PUT",    CHALLENGE + "%00",                                    sig,      404, "not_found",            None,            "valid"),
        ("put-id-sql",                    "PUT",    "/v1/mfa/challenges/signatures/1'%20OR%20'1'='1",     sig,      404, "not_found",            None,            "valid"),
        ("put-no-token",                  "PUT",    CHALLENGE,                                            sig,      401, "unauthorized",         "Authorization", "none"),
        ("put-garbage-token",             "PUT",    CHALLENGE,                                            sig,      401, "unauthorized",         "Authorization", "garbage"),
        ("put-token-for-another-audience","PUT",    CHALLENGE,                                            sig,      401, "unauthorized",         "Authorization", "wrong-audience"),
        ("put-token-without-scope",       "PUT",    CHALLENGE,                                            sig,      403, "insufficient_scope",   "Authorization", "no-scope"),
        ("put-no-token-malformed-body",   "PUT",    CHALLENGE,                                            b"{",     401, "unauthorized",         "Authorization", "none"),
        ("post-to-challenge",             "POST",   CHALLENGE,                                            sig,      405, "method_not_allowed",   None,            "valid"),
        ("patch-challenge",               "PATCH",  CHALLENGE,                                            sig,      405, "method_not_allowed",   None,            "valid"),
        ("delete-challenge",              "DELETE", CHALLENGE,                                            None,     405, "method_not_allowed",   None,            "valid"),
        ("post-no-token",                 "POST",   DEVICES,                                              registration, 401, "unauthorized",     "Authorization", "none"),
        ("put-devices-collection",        "PUT",    DEVICES,                                              registration, 405, "method_not_allowed", None,          "valid"),
        ("patch-device",                  "PATCH",  "/v1/mfa/devices/{device}",                           b"{}",    405, "method_not_allowed",   None,            "valid"),
        ("get-device-oversized-id",       "GET",    "/v1/mfa/devices/" + "f" * 4096,                      None,     404, "not_found",            None,            "valid"),
    ]
    # A body in anything but JSON (or without a Content-Type): 415 before it is read, in
    # the flat shape; no field to name.
    media: list[tuple[str, str, str, bytes, Mapping[str, str]]] = [
        # name                      method  path       body                                                   headers
        ("put-form-encoded",        "PUT",  CHALLENGE, b"signature=" + SIGNATURE.encode(),                    form),
        ("put-text-plain-not-json", "PUT",  CHALLENGE, SIGNATURE.encode(),                                    {"Content-Type": "text/plain"}),
        ("put-json-as-text-plain",  "PUT",  CHALLENGE, sig,                                                   {"Content-Type": "text/plain"}),
        ("put-json-as-xml",         "PUT",  CHALLENGE, sig,                                                   {"Content-Type": "application/xml"}),
        ("put-json-as-multipart",   "PUT",  CHALLENGE, sig,                                                   {"Content-Type": "multipart/form-data; boundary=x"}),
        ("put-no-content-type",     "PUT",  CHALLENGE, sig,                                                   {}),
        ("post-form-encoded",       "POST", DEVICES,   b"person_id=p&key_type=ecdsa-p256&key=" + good.encode(), form),
        ("post-no-content-type",    "POST", DEVICES,   registration,                                          {}),
    ]
    # fmt: on
    table = [
        *(
            Hostile(name, "PUT", CHALLENGE, body, 400, "validation_error", field, headers)
            for name, body, field, headers in put_bodies
        ),
        *(
            Hostile(name, "POST", DEVICES, body, 400, "validation_error", field, headers)
            for name, body, field, headers in post_bodies
        ),
        *(
            Hostile(name, method, path, body, status, code, field, auth=auth)
            for name, method, path, body, status, code, field, auth in refused
        ),
        *(
            Hostile(name, method, path, body, 415, "unsupported_media_type", None, headers)
            for name, method, path, body, headers in media
        ),
    ]
    names = [case.name for case in table]
    assert len(names) == len(set(names)), "case names must be unique"
    return table
