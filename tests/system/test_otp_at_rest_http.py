"""OTPs at rest, end to end (SPEC §4, §9): HTTP in, real Kafka through, a real worker on a
SQLite file. After a run of registrations, failed and verified attempts and an unbinding,
neither the database file nor its write-ahead log holds any OTP's SHA-256 or the OTP
itself; a pending challenge past its expiry is swept within the sweep interval; unbinding a
pending device ends its challenge. (The worker without keys: tests/worker/test_otp_at_rest.)"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.worker import DeviceKey
from tests.system.http_stack import Stack, assert_flat, assert_listed, http_stack

pytestmark = pytest.mark.kafka

SWEEP_SECONDS = 0.5


@pytest.fixture
async def sqlite_stack(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Stack]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    async with http_stack(
        kafka_bootstrap, url, tmp_path, worker_overrides={"expiry_sweep_seconds": SWEEP_SECONDS}
    ) as running:
        yield running


def _on_disk(directory: Path) -> tuple[list[str], bytes]:
    """The names and bytes of the database file and its WAL (and shared memory), as they are
    on disk now."""
    paths = sorted(directory.glob("store.db*"))
    return [path.name for path in paths], b"".join(path.read_bytes() for path in paths)


def _otp_in_clear(otp: str, data: bytes) -> bool:
    # The six digits as a token of their own: inside hex ids or longer numbers they are
    # a coincidence, not the OTP.
    return re.search(rb"(?<![0-9A-Za-z])" + otp.encode() + rb"(?![0-9A-Za-z])", data) is not None


def _challenge_row(directory: Path, challenge_id: str) -> tuple[str, bytes | None]:
    with sqlite3.connect(directory / "store.db") as connection:
        status, digest = connection.execute(
            "SELECT status, otp_digest FROM challenges WHERE id = ?", (challenge_id,)
        ).fetchone()
    return status, digest


async def test_the_database_files_of_a_run_hold_no_otp_digest_in_clear(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    stack = sqlite_stack
    otps: list[str] = []
    # Verified after a failed attempt; left pending after a failed one; unbound pending.
    for person in ("verified", "pending", "unbound"):
        key = DeviceKey()
        registered = await stack.register(key, person_id=person)
        challenge_id = registered["challenge"]["id"]
        otp = await stack.otp(challenge_id)
        otps.append(otp)
        failed = await stack.put(challenge_id, DeviceKey().sign(otp))
        assert failed.status_code == 403, failed.text
        if person == "verified":
            assert (await stack.put(challenge_id, key.sign(otp))).status_code == 204
        if person == "unbound":
            deleted = await stack.http.delete(
                f"/v1/mfa/devices/{registered['id']}", headers=stack.auth()
            )
            assert deleted.status_code == 204
            # SPEC §4: unbinding ends the challenge; the device is gone for the client.
            assert_flat(await stack.put(challenge_id, key.sign(otp)), 404, "not_found")
            assert _challenge_row(tmp_path, challenge_id) == ("expired", None)
        else:
            status, digest = _challenge_row(tmp_path, challenge_id)
            assert (status, digest is None) == (person, person == "verified")

    names, on_disk = _on_disk(tmp_path)
    assert "store.db-wal" in names
    for otp in otps:
        assert hashlib.sha256(otp.encode()).digest() not in on_disk
        assert not _otp_in_clear(otp, on_disk)


async def test_a_pending_challenge_past_its_expiry_is_swept_within_the_interval(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    stack = sqlite_stack
    key = DeviceKey()
    challenge_id = (await stack.register(key, person_id="sweep"))["challenge"]["id"]
    otp = await stack.otp(challenge_id)
    assert _challenge_row(tmp_path, challenge_id)[0] == "pending"

    stack.clock.advance(stack.settings.challenge_ttl_seconds + 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    while _challenge_row(tmp_path, challenge_id)[0] == "pending":
        assert loop.time() - started < 4 * SWEEP_SECONDS + 2, "not swept in time"
        await asyncio.sleep(0.05)

    assert _challenge_row(tmp_path, challenge_id) == ("expired", None)
    # No attempt, no event; the next attempt is refused as expired (SPEC §3), with its event.
    assert_listed(await stack.put(challenge_id, key.sign(otp)), 409, "challenge_expired")
    events = await stack.events_of(challenge_id, count=2)
    assert [e["type"] for e in events] == [
        "mfa.device_binding.challenge_created",
        "mfa.device_binding.signature_rejected",
    ]
