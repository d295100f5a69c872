"""The OTP delivery lease: who delivers a challenge's OTP, and since when.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Two nullable columns on ``challenges``. Rows stored before this revision have no lease; a
worker finding one undelivered takes it over at once, as every worker did before.

A column already there is left alone: a database the worker created itself before
migrations existed (see 0001) may have been made from models that had them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _columns() -> list[sa.Column[object]]:
    # New objects on every call: a Column belongs to the one table it is added to.
    return [
        sa.Column("otp_delivery_claim", sa.String(length=32), nullable=True),
        sa.Column("otp_delivery_claimed_at", sa.DateTime(timezone=True), nullable=True),
    ]


def _existing() -> set[str]:
    return {column["name"] for column in sa.inspect(op.get_bind()).get_columns("challenges")}


def upgrade() -> None:
    existing = _existing()
    for column in _columns():
        if column.name not in existing:
            op.add_column("challenges", column)


def downgrade() -> None:
    # Batch mode: SQLite rebuilds the table where it cannot drop a column in place.
    with op.batch_alter_table("challenges") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
