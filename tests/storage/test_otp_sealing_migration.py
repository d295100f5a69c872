"""Revision 0005 (SPEC §9): the digests of pending challenges sealed in place with the first
key of ``OTP_ENCRYPTION_KEYS``, those of challenges no longer pending dropped; refused
without keys when there is something to seal; the downgrade drops what the release before
could not read. On SQLite and on PostgreSQL (marked ``postgres``)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine
from storage.migrations import current_revisions, downgrade, upgrade
from worker.errors import OtpKeysInvalid
from worker.migrations import WORKER_MIGRATIONS
from worker.otp_keyring import OtpKeyring, kid_of, new_key_text
from worker.tables import ChallengeRow, DeviceRow

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
FIRST, SECOND = new_key_text("first"), new_key_text("second")


def _digest(otp: str) -> bytes:
    return hashlib.sha256(otp.encode()).digest()


# (challenge id, status, digest in clear) as the release before 0005 stored them.
ROWS = [
    ("c-pending-1", "pending", _digest("111111")),
    ("c-pending-2", "pending", _digest("222222")),
    ("c-verified", "verified", _digest("333333")),  # kept by mistake: dropped now
    ("c-locked", "locked", None),
]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _at_0004_with_digests_in_clear(engine: AsyncEngine) -> None:
    await upgrade(engine, WORKER_MIGRATIONS, "0004")
    async with engine.begin() as connection:
        for challenge_id, status, digest in ROWS:
            device_id = f"d-{challenge_id}"
            await connection.execute(
                insert(DeviceRow).values(
                    id=device_id,
                    key_id=f"k-{challenge_id}",
                    client_id="bank-1",
                    person_id=f"p-{challenge_id}",
                    key_purpose="unrestricted",
                    public_key="04" + "ab" * 64,
                    status="pending",
                    created_at=NOW,
                    created_by_command=f"cmd-{challenge_id}",
                    created_by_request="r-1",
                )
            )
            await connection.execute(
                insert(ChallengeRow).values(
                    id=challenge_id,
                    device_id=device_id,
                    status=status,
                    otp_digest=digest,
                    otp_delivered=True,
                    failed_attempts=0,
                    created_at=NOW,
                    expires_at=NOW + timedelta(minutes=5),
                )
            )


async def _digests(engine: AsyncEngine) -> dict[str, bytes | None]:
    async with engine.connect() as connection:
        rows = await connection.execute(select(ChallengeRow.id, ChallengeRow.otp_digest))
        return dict(rows.all())


async def test_the_upgrade_seals_pending_digests_in_place_and_drops_the_others(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _at_0004_with_digests_in_clear(engine)
    monkeypatch.setenv("OTP_ENCRYPTION_KEYS", f"{FIRST},{SECOND}")

    await upgrade(engine, WORKER_MIGRATIONS)

    stored = await _digests(engine)
    keyring = OtpKeyring.parse(FIRST)  # the first key alone opens them: it sealed them
    for challenge_id, status, digest in ROWS:
        sealed = stored[challenge_id]
        if status != "pending":
            assert sealed is None, challenge_id
            continue
        assert sealed is not None
        assert digest is not None
        assert digest not in sealed
        assert kid_of(sealed) == "first"
        assert keyring.open(challenge_id, sealed) == digest
    # Bound to their own challenge: swapped, neither opens.
    assert keyring.open("c-pending-2", stored["c-pending-1"] or b"") is None


async def test_the_upgrade_refuses_to_run_without_keys_when_there_is_something_to_seal(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _at_0004_with_digests_in_clear(engine)
    monkeypatch.delenv("OTP_ENCRYPTION_KEYS", raising=False)

    with pytest.raises(OtpKeysInvalid, match="OTP_ENCRYPTION_KEYS is not set"):
        await upgrade(engine, WORKER_MIGRATIONS)

    # One transaction: nothing of 0005 happened, the digests are as they were.
    assert await current_revisions(engine, WORKER_MIGRATIONS) == ("0004",)
    assert await _digests(engine) == {c: d for c, _, d in ROWS}


async def test_an_empty_store_migrates_without_keys(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTP_ENCRYPTION_KEYS", raising=False)

    await upgrade(engine, WORKER_MIGRATIONS)

    assert await current_revisions(engine, WORKER_MIGRATIONS) == ("0005",)


async def test_the_downgrade_drops_sealed_digests_rather_than_writing_them_in_clear(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _at_0004_with_digests_in_clear(engine)
    monkeypatch.setenv("OTP_ENCRYPTION_KEYS", FIRST)
    await upgrade(engine, WORKER_MIGRATIONS)

    await downgrade(engine, WORKER_MIGRATIONS, "0004")

    assert await current_revisions(engine, WORKER_MIGRATIONS) == ("0004",)
    assert set((await _digests(engine)).values()) == {None}
    # And up again: nothing left to seal, no keys needed.
    monkeypatch.delenv("OTP_ENCRYPTION_KEYS")
    await upgrade(engine, WORKER_MIGRATIONS)
    assert await current_revisions(engine, WORKER_MIGRATIONS) == ("0005",)
