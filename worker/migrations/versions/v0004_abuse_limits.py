"""Abuse limits: a person's consecutive failures and lock; refusals kept by request.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

``person_limits`` holds, per client and person, the failed signatures in a row and the lock
they lead to (SPEC §9). ``refusals`` gains the refused request's signature and client, so
that an identical request is answered with the stored refusal and adds no event (SPEC §5),
and an index on the decision time, by which refusals past their retention are deleted.

IF NOT EXISTS and columns added only when missing, as in 0001 and 0002.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _refusal_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("signature", sa.String(length=144), nullable=True),
        sa.Column("client_id", sa.String(length=255), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "person_limits",
        sa.Column("client_id", sa.String(length=255), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("locked_by", sa.Text(), nullable=True),
        sa.Column("lock_event_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", "person_id"),
        if_not_exists=True,
    )
    existing = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("refusals")}
    for column in _refusal_columns():
        if column.name not in existing:
            op.add_column("refusals", column)
    op.create_index(
        "ix_refusals_request",
        "refusals",
        ["challenge_id", "signature", "client_id"],
        unique=False,
        if_not_exists=True,
    )
    op.create_index(
        "ix_refusals_decided_at", "refusals", ["decided_at"], unique=False, if_not_exists=True
    )


def downgrade() -> None:
    op.drop_index("ix_refusals_decided_at", table_name="refusals")
    op.drop_index("ix_refusals_request", table_name="refusals")
    with op.batch_alter_table("refusals") as batch:
        for column in reversed(_refusal_columns()):
            batch.drop_column(column.name)
    op.drop_table("person_limits")
