"""A throwaway certificate authority and broker certificate for the local SASL_SSL broker.

Made afresh at every start into the broker's own folder and never committed: nothing signed
by a CA that lives for one run can be trusted by anything else. The broker reads them as PEM
(Kafka 4.x takes PEM keystores and truststores); clients trust ``ca.pem`` and check the host
name against the certificate's names (``127.0.0.1`` and ``localhost``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Longer than any test run or `make run` session; short enough that a copied file is useless.
VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class BrokerTls:
    """Where the broker's PEM files are: the CA clients trust, the broker's key and chain."""

    ca_file: Path
    keystore_file: Path  # the broker's private key (PKCS#8), then its certificate and the CA's


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "device-binding local broker"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    # Created with its final mode from the start: never more readable, not even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def generate_broker_tls(
    folder: Path, *, host_names: tuple[str, ...] = (), key_mode: int = 0o600
) -> BrokerTls:
    """Write a new CA and a broker certificate it signs (SAN 127.0.0.1, localhost and
    ``host_names``), the key in a file of ``key_mode``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + VALIDITY

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("device-binding local CA")
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    broker_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [
        *(x509.DNSName(name) for name in ("localhost", *host_names)),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    ]
    broker_certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_name)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    tls = BrokerTls(ca_file=folder / "ca.pem", keystore_file=folder / "broker-keystore.pem")
    tls.ca_file.write_bytes(ca_certificate.public_bytes(pem))
    # The CA's private key is never written: nothing else is ever signed with it.
    _write_private(
        tls.keystore_file,
        broker_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + broker_certificate.public_bytes(pem)
        + ca_certificate.public_bytes(pem),
        key_mode,
    )
    return tls
