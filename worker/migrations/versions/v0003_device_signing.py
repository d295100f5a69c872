"""Device signing: a device's keys by purpose, the challenges it signs, their attempts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Every device stored before this revision gets its one key (the binding key) as a row of
``device_keys``, so that signing finds the keys of every bound device in one place; an
unbound device has none (unbinding removes its keys).

IF NOT EXISTS, and keys copied only where missing, as in 0001: a database the worker made
itself from its models before migrations existed is adopted as it is.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "device_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("key_purpose", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.String(length=130), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_by_key_id", sa.String(length=36), nullable=True),
        sa.Column("created_by_command", sa.String(length=36), nullable=False),
        sa.Column("created_by_request", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("created_by_command"),
        sa.UniqueConstraint("device_id", "key_purpose", name="uq_device_key_purpose"),
        if_not_exists=True,
    )
    op.execute(
        "INSERT INTO device_keys (id, device_id, key_purpose, public_key, created_at,"
        " created_by_command, created_by_request)"
        " SELECT key_id, id, key_purpose, public_key, created_at, created_by_command,"
        " created_by_request FROM devices WHERE status != 'unbound'"
        " AND NOT EXISTS (SELECT 1 FROM device_keys AS k WHERE k.id = devices.key_id)"
    )
    op.create_table(
        "device_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("device_id", sa.String(length=36), nullable=False),
        sa.Column("key_id", sa.String(length=36), nullable=False),
        sa.Column("key_purpose", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("string_to_sign", sa.Text(), nullable=False),
        sa.Column("message_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("transaction_json", sa.Text(), nullable=True),
        sa.Column("device_data", sa.Text(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_command", sa.String(length=36), nullable=False),
        sa.Column("created_by_request", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("created_by_command"),
        if_not_exists=True,
    )
    op.create_index(
        "ix_device_challenges_device",
        "device_challenges",
        ["device_id", "status"],
        unique=False,
        if_not_exists=True,
    )
    op.create_table(
        "device_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("challenge_id", sa.String(length=36), nullable=False),
        sa.Column("signature", sa.String(length=144), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("event_json", sa.Text(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["challenge_id"], ["device_challenges.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("challenge_id", "signature", name="uq_device_attempt_signature"),
        if_not_exists=True,
    )


def downgrade() -> None:
    # Referencing tables first.
    op.drop_table("device_attempts")
    op.drop_index("ix_device_challenges_device", table_name="device_challenges")
    op.drop_table("device_challenges")
    op.drop_table("device_keys")
