"""The SASL_SSL broker's throwaway files: a CA and a certificate clients can verify for
127.0.0.1 and localhost, and passwords that never leave their 0600 files."""

from __future__ import annotations

import ssl
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from harness.kafka.certificates import generate_broker_tls
from harness.kafka.credentials import BrokerCredentials
from provisioning.acls import PRINCIPALS


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_broker_certificate_is_for_loopback_and_signed_by_the_ca(tmp_path: Path) -> None:
    tls = generate_broker_tls(tmp_path)
    ca = x509.load_pem_x509_certificate(tls.ca_file.read_bytes())
    [broker, chained_ca] = x509.load_pem_x509_certificates(
        tls.keystore_file.read_bytes().split(b"-----END PRIVATE KEY-----\n")[1]
    )

    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    broker.verify_directly_issued_by(ca)
    assert chained_ca == ca
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    # The broker's key is private to its owner; the CA's key was never written at all.
    assert _mode(tls.keystore_file) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broker-keystore.pem", "ca.pem"]
    # What a client does with KAFKA_SSL_CAFILE: the CA loads as a trust anchor.
    context = ssl.create_default_context(cafile=str(tls.ca_file))
    assert context.cert_store_stats()["x509_ca"] == 1


def test_each_start_draws_new_certificates(tmp_path: Path) -> None:
    first = generate_broker_tls(tmp_path / "a").ca_file.read_bytes()
    second = generate_broker_tls(tmp_path / "b").ca_file.read_bytes()
    assert first != second


def test_passwords_are_per_principal_random_and_kept_in_a_private_file(tmp_path: Path) -> None:
    credentials = BrokerCredentials.generate(tmp_path / "ca.pem")
    again = BrokerCredentials.generate(tmp_path / "ca.pem")
    assert set(credentials.passwords) == set(PRINCIPALS)
    assert len(set(credentials.passwords.values())) == len(PRINCIPALS)
    assert not set(credentials.passwords.values()) & set(again.passwords.values())

    stored = tmp_path / "credentials.json"
    credentials.save(stored)

    assert _mode(stored) == 0o600
    assert BrokerCredentials.load(stored) == credentials
    shown = repr(credentials) + repr(credentials.connection("api"))
    assert not [p for p in credentials.passwords.values() if p in shown]
