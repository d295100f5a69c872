"""Settings come from the environment, once; required ones have no default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from api.settings import ServerSettings, Settings
from schemas import topics

REQUIRED = {
    "AUTH_JWKS_FILE": "/etc/device-binding/jwks.json",
    "AUTH_ISSUER": "https://idp.bank.test",
    "AUTH_AUDIENCE": "device-binding",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*Settings.model_fields, *ServerSettings.model_fields]:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_defaults(environment: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.auth_jwks_file == Path(REQUIRED["AUTH_JWKS_FILE"])
    assert settings.auth_issuer == REQUIRED["AUTH_ISSUER"]
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.commands_topic == topics.COMMANDS
    assert settings.replies_topic == topics.REPLIES
    assert settings.reply_wait_seconds == 5.0
    assert settings.publish_timeout_seconds == 5.0
    assert settings.retry_after_seconds == 1
    assert settings.client_rate_per_second == 200
    assert settings.client_rate_burst == 400
    assert settings.max_in_flight == 256
    assert settings.instance_id.startswith("api-")
    assert Settings().instance_id != settings.instance_id


def test_environment_overrides(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    environment.setenv("REPLY_WAIT_SECONDS", "2.5")
    environment.setenv("REPLIES_TOPIC", "test.replies")
    environment.setenv("INSTANCE_ID", "api-pod-7")
    environment.setenv("CLIENT_RATE_PER_SECOND", "12.5")
    environment.setenv("CLIENT_RATE_BURST", "30")
    environment.setenv("MAX_IN_FLIGHT", "64")
    settings = Settings()
    assert (settings.client_rate_per_second, settings.client_rate_burst) == (12.5, 30)
    assert settings.max_in_flight == 64
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"
    assert settings.reply_wait_seconds == 2.5
    assert settings.replies_topic == "test.replies"
    assert settings.instance_id == "api-pod-7"


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_required_settings_have_no_default(environment: pytest.MonkeyPatch, missing: str) -> None:
    environment.delenv(missing)
    with pytest.raises(ValidationError, match=f"(?i){missing}"):
        Settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_ISSUER", "  "),
        ("REPLY_WAIT_SECONDS", "0"),
        ("PUBLISH_TIMEOUT_SECONDS", "-1"),
        ("RETRY_AFTER_SECONDS", "0"),
        ("COMMANDS_TOPIC", "no spaces allowed"),
        ("INSTANCE_ID", ""),
        ("CLIENT_RATE_PER_SECOND", "0"),
        ("CLIENT_RATE_BURST", "0"),
        ("CLIENT_RATE_BURST", "1.5"),
        ("MAX_IN_FLIGHT", "0"),
    ],
)
def test_unusable_values_are_refused(
    environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    environment.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_server_settings(environment: pytest.MonkeyPatch) -> None:
    server = ServerSettings()
    assert (server.api_host, server.api_port, server.api_admin_port) == ("127.0.0.1", 8000, 8010)
    environment.setenv("API_HOST", "192.0.2.10")
    environment.setenv("API_PORT", "8080")
    environment.setenv("API_ADMIN_PORT", "9090")
    server = ServerSettings()
    assert (server.api_host, server.api_port, server.api_admin_port) == ("192.0.2.10", 8080, 9090)


def test_the_admin_port_is_not_the_api_port(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("API_ADMIN_PORT", "8000")
    with pytest.raises(ValidationError, match="API_PORT and API_ADMIN_PORT must differ"):
        ServerSettings()
