"""The device signature drain's backlog: bound devices with their keys and pending device
challenges written into a real store, each ticket the device's signature of its challenge's
string to sign; and one worker draining them for real."""

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.device_seed import bound_with_challenges, seed_device_challenges
from bench.drain import run_drain
from bench.seed import verify_command
from schemas.commands import COMMAND_ADAPTER, VerifyDeviceSignature
from schemas.events import EventType
from storage.engine import create_engine
from storage.migrations import upgrade
from worker.migrations import WORKER_MIGRATIONS
from worker.verify import verify_digest, verify_message

COUNT = 200
# Each challenge with the key that is to sign it and its device: the key is the device's
# binding key, stored as registration stores it (the device's key id and command).
CHALLENGES = text(
    """
    SELECT c.id, c.status, c.key_purpose, c.failed_attempts, c.expires_at > c.created_at,
           c.string_to_sign, c.message_digest, k.key_purpose, k.public_key, d.public_key,
           d.status, (SELECT b.status FROM challenges AS b WHERE b.device_id = d.id)
    FROM device_challenges AS c
         JOIN device_keys AS k ON k.id = c.key_id
         JOIN devices AS d ON d.id = c.device_id AND d.id = k.device_id AND d.key_id = k.id
              AND d.created_by_command = k.created_by_command
    """
)


async def test_each_seeded_challenge_is_pending_on_a_bound_device_and_its_ticket_verifies(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, WORKER_MIGRATIONS)
        # In a thread: on PostgreSQL the seed runs an event loop of its own, as in the drain.
        tickets = await asyncio.to_thread(seed_device_challenges, database_url, COUNT)
        async with engine.connect() as connection:
            rows = (await connection.execute(CHALLENGES)).all()
            persons = await connection.scalar(text("SELECT count(DISTINCT person_id) FROM devices"))
    finally:
        await engine.dispose()
    assert len(tickets) == len(rows) == COUNT
    assert persons == COUNT  # one bound device per person: no limit is anywhere near
    signatures = {ticket.challenge_id: ticket.signature for ticket in tickets}
    for row in rows:
        challenge_id, string_to_sign, digest, public_key = row[0], row[5], bytes(row[6]), row[8]
        assert (*row[1:5], row[7]) == ("pending", "unrestricted", 0, True, "unrestricted")
        assert (row[9], row[10], row[11]) == (public_key, "bound", "verified")
        signed = json.loads(string_to_sign)
        assert set(signed) == {"challenge_id", "nonce", "created_at", "expires_at"}  # a login
        assert signed["challenge_id"] == challenge_id
        assert digest == hashlib.sha256(string_to_sign.encode("utf-8")).digest()
        # What the worker checks (the stored digest) and what the device signed (the text).
        key, signature = bytes.fromhex(public_key), signatures[challenge_id]
        verify_digest(public_key=key, digest=digest, signature_hex=signature)
        verify_message(public_key=key, message=string_to_sign.encode(), signature_hex=signature)


def test_a_device_ticket_becomes_the_command_the_api_would_publish() -> None:
    _, tickets = bound_with_challenges(1)
    key, value = verify_command(
        tickets[0], reply_to="bench-drain", command_type=VerifyDeviceSignature
    )
    command = COMMAND_ADAPTER.validate_json(value)
    assert isinstance(command, VerifyDeviceSignature)
    assert key == str(command.challenge_id).encode() == tickets[0].challenge_id.encode()
    assert (command.signature, command.reply_to) == (tickets[0].signature, "bench-drain")


@pytest.mark.kafka
@pytest.mark.slow
def test_one_worker_verifies_every_seeded_device_signature(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    result = run_drain(kafka_bootstrap, tmp_path, commands=COUNT, kind="device", give_up_after=120)
    assert (result.kind, result.complete, result.drained) == ("device", True, COUNT)
    verified = EventType.DEVICE_SIGNATURE_VERIFIED.value
    assert set(result.event_types) == {verified}
    assert result.drain_per_s > 0
