"""The audit trail's tables (SQLAlchemy 2, SQLite or PostgreSQL), apart from the service's.

``audit_records`` is the chain, append-only: database triggers refuse UPDATE and DELETE
(see :mod:`audit.database`), and the hash chain shows any change made by someone who can
get past them. ``audit_chain_head`` is one row naming the last record: appenders lock it,
so records are chained one after another even with several consumers, and a record removed
from the end of the chain is noticed. ``audit_anomalies`` keeps what could not be chained:
messages that are not events, and a second event with an id already stored but with
different content.
"""

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UtcDateTime

HASH_LENGTH = 64  # hex SHA-256


class AuditBase(DeclarativeBase):
    pass


class AuditRecord(AuditBase):
    __tablename__ = "audit_records"

    # Assigned by the appender as the head's seq + 1, never by the database: a gap is a
    # missing record, not an artefact of a rolled-back sequence.
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str | None] = mapped_column(String(255))
    # The canonical JSON of the event as published (see audit.chain.canonical_event).
    event: Mapped[str] = mapped_column(Text)
    event_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    previous_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    record_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    # Where the first copy was read: evidence for an investigation, not part of the chain.
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ChainHead(AuditBase):
    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    record_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))


class Anomaly(AuditBase):
    __tablename__ = "audit_anomalies"
    # One row per message, however often it is delivered.
    __table_args__ = (UniqueConstraint("topic", "partition", "offset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))  # "unreadable" or "conflicting_duplicate"
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    event_id: Mapped[str | None] = mapped_column(String(255))
    # SHA-256 of the message value as received; the value itself is not kept, since a
    # message that is not one of our events may carry anything.
    payload_hash: Mapped[str] = mapped_column(String(HASH_LENGTH))
    detail: Mapped[str] = mapped_column(String(500))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)
