"""OTP digests sealed at rest; pending challenges found by their expiry.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

SPEC §9: ``challenges.otp_digest`` held SHA-256(OTP) in clear, exactly what a device signs.
From this revision it holds the digest sealed with AES-256-GCM, bound to the challenge id
(:mod:`worker.otp_keyring`). The upgrade seals the digests of pending challenges in place
with the first key of ``OTP_ENCRYPTION_KEYS`` (read from the environment, as the worker
reads it), and refuses to run without keys when there is anything to seal; the digests of
challenges no longer pending are dropped, as SPEC §4 wanted all along. The column's type
does not change: a BLOB on SQLite and a ``bytea`` on PostgreSQL, neither bounded (the 32 of
the model was never enforced).

Two partial indexes on the expiry of pending challenges serve the expiry sweep
(:mod:`worker.expiry`).

Downgrade: the release before this one can only read digests in clear, and writing them
back in clear would undo the point of this revision; so the downgrade drops the digests of
pending challenges instead. That release then refuses those challenges as spent
(``challenge_locked``): their people start a new binding, at most a TTL's worth (10
minutes) of them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from worker.otp_keyring import keyring_from
from worker.settings import WorkerSettings

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DIGEST_BYTES = 32  # a digest in clear; anything else is sealed already (or not ours)
_INDEXES = (
    ("ix_challenges_pending_expiry", "challenges"),
    ("ix_device_challenges_pending_expiry", "device_challenges"),
)


def upgrade() -> None:
    for name, table in _INDEXES:
        pending = sa.text("status = 'pending'")
        op.create_index(
            name,
            table,
            ["expires_at"],
            unique=False,
            if_not_exists=True,
            sqlite_where=pending,
            postgresql_where=pending,
        )
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "UPDATE challenges SET otp_digest = NULL"
            " WHERE status <> 'pending' AND otp_digest IS NOT NULL"
        )
    )
    bind.execute(
        sa.text(
            "UPDATE device_challenges SET message_digest = NULL"
            " WHERE status <> 'pending' AND message_digest IS NOT NULL"
        )
    )
    clear = [
        (challenge_id, digest)
        for challenge_id, digest in bind.execute(
            sa.text(
                "SELECT id, otp_digest FROM challenges"
                " WHERE status = 'pending' AND otp_digest IS NOT NULL"
            )
        )
        if len(digest) == _DIGEST_BYTES
    ]
    if not clear:
        return
    # Only now: a database with nothing to seal migrates without keys.
    keyring = keyring_from(WorkerSettings().otp_encryption_keys)
    bind.execute(
        sa.text("UPDATE challenges SET otp_digest = :sealed WHERE id = :id"),
        [
            {"id": challenge_id, "sealed": keyring.seal(challenge_id, bytes(digest))}
            for challenge_id, digest in clear
        ],
    )


def downgrade() -> None:
    op.get_bind().execute(
        sa.text("UPDATE challenges SET otp_digest = NULL WHERE otp_digest IS NOT NULL")
    )
    for name, table in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
