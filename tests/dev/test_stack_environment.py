"""``make run``'s token settings: the environment's when it names a key set, the development
key's only when it does not; and the API's settings accept what the stack hands it."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.settings import Settings
from dev.stack import (
    AuthConfigurationError,
    api_auth,
    process_environment,
    token_hint,
    worker_otp_keys,
)
from harness import devkeys
from worker.otp_keyring import OtpKeyring, new_key_text

DEV_JWKS = Path("/var/dev/jwks.json")
BOOTSTRAP = "127.0.0.1:19092"


class DevelopmentKey:
    """Stands in for ``devkeys.ensure_keys``: counts whether the key was asked for."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> Path:
        self.made += 1
        return DEV_JWKS


def _api_environment(environ: dict[str, str], key: DevelopmentKey) -> dict[str, str]:
    return process_environment(environ, bootstrap=BOOTSTRAP, auth=api_auth(environ, key))


def _settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The API's settings read from ``env``, as ``python -m api`` reads them."""
    for name in ("AUTH_JWKS_FILE", "AUTH_JWKS_URL", "AUTH_ISSUER", "AUTH_AUDIENCE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if name.startswith("AUTH_"):
            monkeypatch.setenv(name, value)
    return Settings()


def test_without_auth_variables_the_development_key_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = DevelopmentKey()
    env = _api_environment({"PATH": "/usr/bin"}, key)

    assert key.made == 1
    assert env["AUTH_JWKS_FILE"] == str(DEV_JWKS)
    assert env["AUTH_ISSUER"] == devkeys.DEFAULT_ISSUER
    assert env["AUTH_AUDIENCE"] == devkeys.DEFAULT_AUDIENCE
    assert "AUTH_JWKS_URL" not in env
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == BOOTSTRAP
    assert env["PATH"] == "/usr/bin"
    settings = _settings(env, monkeypatch)
    assert settings.auth_jwks_file == DEV_JWKS
    assert settings.auth_jwks_url is None


def test_a_jwks_file_with_its_issuer_and_audience_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jwks = tmp_path / "idp.json"
    environ = {
        "AUTH_JWKS_FILE": str(jwks),
        "AUTH_ISSUER": "https://idp.bank.example",
        "AUTH_AUDIENCE": "device-binding-staging",
    }
    key = DevelopmentKey()
    env = _api_environment(environ, key)

    assert key.made == 0  # no development key is even made
    assert {name: env[name] for name in environ} == environ
    assert "AUTH_JWKS_URL" not in env
    settings = _settings(env, monkeypatch)
    assert settings.auth_jwks_file == jwks
    assert (settings.auth_issuer, settings.auth_audience) == (
        "https://idp.bank.example",
        "device-binding-staging",
    )


def test_a_jwks_url_with_its_issuer_and_audience_is_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ = {
        "AUTH_JWKS_URL": "https://idp.bank.example/.well-known/jwks.json",
        "AUTH_ISSUER": "https://idp.bank.example",
        "AUTH_AUDIENCE": "device-binding",
        # Left empty by a shell profile: not a second key set.
        "AUTH_JWKS_FILE": "",
    }
    key = DevelopmentKey()
    env = _api_environment(environ, key)

    assert key.made == 0
    assert env["AUTH_JWKS_URL"] == environ["AUTH_JWKS_URL"]
    assert "AUTH_JWKS_FILE" not in env
    assert env["AUTH_ISSUER"] == "https://idp.bank.example"
    settings = _settings(env, monkeypatch)
    assert str(settings.auth_jwks_url) == environ["AUTH_JWKS_URL"]
    assert settings.auth_jwks_file is None


def test_an_issuer_and_audience_alone_are_honoured_with_the_development_key() -> None:
    key = DevelopmentKey()
    env = _api_environment({"AUTH_ISSUER": "my-issuer", "AUTH_AUDIENCE": "my-audience"}, key)

    assert key.made == 1
    assert env["AUTH_JWKS_FILE"] == str(DEV_JWKS)
    assert (env["AUTH_ISSUER"], env["AUTH_AUDIENCE"]) == ("my-issuer", "my-audience")
    hint = token_hint(env, development_key=True)
    assert "--issuer my-issuer --audience my-audience" in hint


def test_empty_variables_count_as_unset() -> None:
    environ = {"AUTH_JWKS_URL": "", "AUTH_JWKS_FILE": " ", "AUTH_ISSUER": "", "AUTH_AUDIENCE": ""}
    key = DevelopmentKey()
    env = _api_environment(environ, key)

    assert key.made == 1
    assert env["AUTH_JWKS_FILE"] == str(DEV_JWKS)
    assert "AUTH_JWKS_URL" not in env
    assert env["AUTH_ISSUER"] == devkeys.DEFAULT_ISSUER
    assert env["AUTH_AUDIENCE"] == devkeys.DEFAULT_AUDIENCE


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        pytest.param(
            {"AUTH_JWKS_URL": "https://idp.example/jwks", "AUTH_AUDIENCE": "a"},
            "AUTH_ISSUER",
            id="url-without-issuer",
        ),
        pytest.param(
            {"AUTH_JWKS_FILE": "/etc/jwks.json", "AUTH_ISSUER": "i"},
            "AUTH_AUDIENCE",
            id="file-without-audience",
        ),
        pytest.param(
            {
                "AUTH_JWKS_FILE": "/etc/jwks.json",
                "AUTH_JWKS_URL": "https://idp.example/jwks",
                "AUTH_ISSUER": "i",
                "AUTH_AUDIENCE": "a",
            },
            "not both",
            id="file-and-url",
        ),
    ],
)
def test_an_incomplete_identity_provider_is_refused_before_anything_starts(
    environ: dict[str, str], named: str
) -> None:
    key = DevelopmentKey()
    with pytest.raises(AuthConfigurationError, match=named):
        api_auth(environ, key)
    assert key.made == 0


def test_the_stack_hints_at_the_right_token() -> None:
    development = api_auth({}, DevelopmentKey())
    assert token_hint(development, development_key=True).startswith("token: make token")
    assert "identity provider" in token_hint(
        {"AUTH_JWKS_URL": "https://idp.example/jwks", "AUTH_ISSUER": "i", "AUTH_AUDIENCE": "a"},
        development_key=False,
    )


def test_the_workers_get_the_environments_otp_keys_and_no_other_process_does(
    tmp_path: Path,
) -> None:
    given = new_key_text("ops")
    environ = {"PATH": "/usr/bin", "OTP_ENCRYPTION_KEYS": given}

    assert worker_otp_keys(environ, tmp_path / "keys") == {"OTP_ENCRYPTION_KEYS": given}
    assert not (tmp_path / "keys").exists()
    shared = _api_environment(environ, DevelopmentKey())
    assert "OTP_ENCRYPTION_KEYS" not in shared


def test_without_otp_keys_a_development_key_is_made_once_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "var" / "otp-encryption-keys"

    first = worker_otp_keys({}, key_file)
    again = worker_otp_keys({"OTP_ENCRYPTION_KEYS": "  "}, key_file)

    assert first == again  # kept: challenges pending before a restart still verify
    assert OtpKeyring.parse(first["OTP_ENCRYPTION_KEYS"]).kids == ("dev",)
    assert key_file.stat().st_mode & 0o777 == 0o600
