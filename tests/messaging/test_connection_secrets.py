"""The connection settings read a password from a secret file (compose's ``secrets:``) as from
the environment, and never show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from messaging import KafkaConnection, kafka_options


def test_the_password_is_read_from_its_secret_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("KAFKA_SASL_PASSWORD", "KAFKA_SASL_USERNAME", "KAFKA_SECURITY_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "kafka_sasl_password").write_text("from-the-secret-file\n")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "worker")

    connection = KafkaConnection(_secrets_dir=tmp_path).check()

    assert connection.sasl_password.get_secret_value() == "from-the-secret-file"
    assert kafka_options("b:9092", connection)["sasl_plain_password"] == "from-the-secret-file"
    assert "from-the-secret-file" not in repr(connection)
    # The environment wins over the file.
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "from-the-environment")
    again = KafkaConnection(_secrets_dir=tmp_path)
    assert again.sasl_password.get_secret_value() == "from-the-environment"
