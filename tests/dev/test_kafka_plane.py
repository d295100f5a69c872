"""``make run``'s security switch, each process's role variables, and how ``make demo`` finds
its principal."""

from __future__ import annotations

from pathlib import Path

import pytest

from dev.kafka_plane import demo_connection, requested_security, role_environment
from harness.kafka.credentials import BrokerCredentials
from harness.kafka.secure_plane import SecurePlane
from provisioning.acls import DEMO, WORKER, PlaneNames


def test_plaintext_is_the_default_and_sasl_ssl_the_only_other_mode() -> None:
    assert requested_security({}) == "plaintext"
    assert requested_security({"KAFKA_SECURITY": ""}) == "plaintext"
    assert requested_security({"KAFKA_SECURITY": "SASL_SSL"}) == "sasl_ssl"
    with pytest.raises(ValueError, match="plaintext or sasl_ssl"):
        requested_security({"KAFKA_SECURITY": "ssl"})


def test_a_process_gets_its_roles_credentials_and_none_it_inherited(tmp_path: Path) -> None:
    credentials = BrokerCredentials.generate(tmp_path / "ca.pem")
    plane = SecurePlane("127.0.0.1:9092", credentials, PlaneNames())
    inherited = {
        "PATH": "/usr/bin",
        "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "KAFKA_SSL_CERTFILE": "/somebody/else.pem",
        "KAFKA_SASL_USERNAME": "admin",
    }

    env = role_environment(inherited, plane, WORKER)

    assert env["PATH"] == "/usr/bin"
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_USERNAME"] == WORKER
    assert env["KAFKA_SASL_PASSWORD"] == credentials.passwords[WORKER]
    assert env["KAFKA_SSL_CAFILE"] == str(tmp_path / "ca.pem")
    assert "KAFKA_SSL_CERTFILE" not in env
    assert env["PROVISION_TOPICS"] == "false"
    # Plaintext mode: the environment as it is.
    assert role_environment(inherited, None, WORKER) == inherited


def test_the_demo_reads_as_the_demo_principal_only_on_a_secure_local_broker(
    tmp_path: Path,
) -> None:
    stored = tmp_path / "credentials.json"
    assert demo_connection({}, stored) is None  # plaintext `make run`
    credentials = BrokerCredentials.generate(tmp_path / "ca.pem")
    credentials.save(stored)

    connection = demo_connection({}, stored)

    assert connection is not None
    assert connection.sasl_username == DEMO
    assert connection.sasl_password.get_secret_value() == credentials.passwords[DEMO]
    # Settings the user gave win, and another broker is not `make run`'s.
    assert demo_connection({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, stored) is None
    assert demo_connection({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092"}, stored) is None
