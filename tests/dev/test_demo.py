"""``make demo``: what its approval screen shows, and the whole demo as ``make demo`` runs it
(``python -m dev.demo``) against a real stack: worker and API processes on a real broker,
with the development OTP sink beside them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from asyncio.subprocess import PIPE, STDOUT
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dev.demo import PAYMENT, payment_lines
from dev.otp_sink import group_id
from harness.processes import PYTHON, ROOT, Children
from harness.stack import start_stack, worker_environment
from harness.topics import wait_for_group
from schemas.signing import Transaction, signed_transaction, string_to_sign
from tests.support.http import Tokens
from tests.support.worker import worker_settings

DEMO_TIMEOUT_SECONDS = 120


def test_the_approval_screen_shows_the_payment_read_from_the_signed_text() -> None:
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    text = string_to_sign(
        challenge_id=uuid.uuid4(),
        nonce="ab" * 32,
        created_at=now,
        expires_at=now + timedelta(minutes=5),
        transaction=Transaction.model_validate(PAYMENT),
    )
    shown = signed_transaction(text)
    assert shown is not None
    assert payment_lines(shown).splitlines() == [
        "  amount     42.50 EUR",
        "  payee      Bäckerei Müller GmbH",
        "  IBAN       DE89370400440532013000",
        "  reference  Invoice 2026-0042",
    ]


def test_a_payment_without_iban_or_reference_is_shown_as_such() -> None:
    shown = Transaction.model_validate(
        {"amount": {"value": "0.99", "currency": "CHF"}, "payee": {"name": "Kiosk"}}
    )
    assert payment_lines(shown).splitlines() == [
        "  amount     0.99 CHF",
        "  payee      Kiosk",
        "  IBAN       (none)",
    ]


@pytest.mark.kafka
@pytest.mark.slow
async def test_make_demo_binds_a_device_and_signs_a_login_and_a_payment(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings = worker_settings(kafka_bootstrap, tmp_path / "store.db")
    tokens = Tokens(tmp_path / "keys")
    sink_file = tmp_path / "otp-sink.jsonl"
    api_env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "AUTH_JWKS_FILE": str(tokens.jwks_file),
        "AUTH_ISSUER": tokens.devkeys.DEFAULT_ISSUER,
        "AUTH_AUDIENCE": tokens.devkeys.DEFAULT_AUDIENCE,
        "COMMANDS_TOPIC": settings.commands_topic,
        "REPLIES_TOPIC": settings.replies_topic,
    }
    with Children(tmp_path / "logs") as children:
        [url] = await start_stack(
            children, worker_env=worker_environment(settings), api_env=api_env, workers=1, apis=1
        )
        children.spawn(
            "otp-sink",
            ["-m", "dev.otp_sink"],
            env={
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "OTP_DELIVERIES_TOPIC": settings.otp_deliveries_topic,
                "OTP_SINK_FILE": str(sink_file),
            },
        )
        # The sink starts at the topic's end: it must hold its partitions before an OTP is sent.
        await wait_for_group(kafka_bootstrap, group_id(settings.otp_deliveries_topic), 1)
        token = tokens.devkeys.mint_token(tokens.directory, client_id="demo-bank")
        demo = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "dev.demo",
            cwd=ROOT,
            env={
                **os.environ,
                "API_URL": url,
                "API_TOKEN": token,
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "EVENTS_TOPIC": settings.events_topic,
                "OTP_SINK_FILE": str(sink_file),
            },
            stdout=PIPE,
            stderr=STDOUT,
        )
        output, _ = await asyncio.wait_for(demo.communicate(), DEMO_TIMEOUT_SECONDS)
        children.check_alive()
    transcript = output.decode()
    assert demo.returncode == 0, transcript

    verdicts = [line for line in transcript.splitlines() if re.fullmatch(r"[A-Z ]+", line)]
    assert verdicts == ["DEVICE BOUND", "RESTRICTED KEY ADDED", "LOGIN SIGNED", "PAYMENT SIGNED"]
    # The OTP came through the sink, as the customer's SMS.
    assert len(sink_file.read_text().splitlines()) == 1
    events = re.findall(r"^   event (\S+)$", transcript, flags=re.MULTILINE)
    assert events == [
        "mfa.device_binding.challenge_created",
        "mfa.device_binding.signature_verified",
        "mfa.device_binding.key_added",
        "mfa.device_binding.device_challenge_created",
        "mfa.device_binding.device_signature_verified",
        "mfa.device_binding.device_challenge_created",
        "mfa.device_binding.device_signature_verified",
    ]
    # The approval screen, read from the string to sign, before the device signs it.
    screen = transcript.index("the app shows the payment read from string_to_sign")
    payment_signed = transcript.index("with its restricted key", screen)
    assert payment_lines(Transaction.model_validate(PAYMENT)) in transcript[screen:payment_signed]
    assert "device signs string_to_sign's UTF-8 bytes with its unrestricted key" in transcript
    payment_created = json.loads(last_event_of(transcript, "device_challenge_created"))
    assert payment_created["data"]["transaction"] == PAYMENT
    assert payment_created["data"]["key_purpose"] == "restricted"


def last_event_of(transcript: str, kind: str) -> str:
    """The JSON printed under the last ``event mfa.device_binding.<kind>`` line."""
    start = transcript.rindex(f"   event mfa.device_binding.{kind}\n") + 1
    body = transcript[transcript.index("\n", start) + 1 :]
    return body[: body.index("\n}\n") + 2]
