"""The relational schema of the challenge/device store (SQLAlchemy 2, SQLite or PostgreSQL)."""

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.types import UtcDateTime


class Base(DeclarativeBase):
    pass


def _pending_expiry_index(name: str) -> Index:
    """Pending challenges by expiry, and only those: the index stays as small as what is
    open, however many decided challenges the table keeps."""
    pending = text("status = 'pending'")
    return Index(name, "expires_at", sqlite_where=pending, postgresql_where=pending)


class DeviceRow(Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(36), unique=True)
    client_id: Mapped[str] = mapped_column(String(255))
    person_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(128))
    key_purpose: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(String(130))
    status: Mapped[str] = mapped_column(String(16))
    device_data: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    bound_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    unbound_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The commands that created and unbound the device: a redelivered command is recognised
    # as itself and replayed instead of being refused.
    created_by_command: Mapped[str] = mapped_column(String(36), unique=True)
    created_by_request: Mapped[str] = mapped_column(String(128))
    unbound_by_command: Mapped[str | None] = mapped_column(String(36))
    unbound_by_request: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_devices_owner", "client_id", "person_id", "status"),)


class ChallengeRow(Base):
    __tablename__ = "challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the OTP, sealed (AES-256-GCM bound to this challenge's id, with the kid of
    # its key: worker.otp_keyring), never in clear: all verification needs, dropped (NULL)
    # when the challenge leaves pending. Never the OTP itself.
    otp_digest: Mapped[bytes | None] = mapped_column(LargeBinary)
    otp_delivered: Mapped[bool] = mapped_column(default=False)
    # Who is delivering the OTP, and since when: a lease. A worker that finds the challenge
    # stored but not delivered (its command redelivered after a rebalance or a crash) waits
    # while the lease is fresh instead of sending a second OTP that would void the first.
    otp_delivery_claim: Mapped[str | None] = mapped_column(String(32))
    otp_delivery_claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    # The expiry sweep (worker.expiry) finds pending challenges past their expiry by this.
    __table_args__ = (_pending_expiry_index("ix_challenges_pending_expiry"),)


class AttemptRow(Base):
    """A counted attempt: one per distinct signature a challenge was given while pending."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    challenge_id: Mapped[str] = mapped_column(ForeignKey("challenges.id"))
    signature: Mapped[str] = mapped_column(String(144))
    outcome: Mapped[str] = mapped_column(String(16))
    number: Mapped[int] = mapped_column(Integer)
    # The event published for this attempt, kept verbatim so a retry republishes the very
    # same event (same CloudEvents id) instead of a new one.
    event_json: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("challenge_id", "signature", name="uq_attempt_signature"),)


class RefusalRow(Base):
    """An attempt refused without counting (unknown, expired, locked, already verified, device
    limit), kept so that a redelivered command answers the very decision and event it had."""

    __tablename__ = "refusals"

    command_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # No foreign key: an unknown challenge is refused too.
    challenge_id: Mapped[str] = mapped_column(String(36))
    reason: Mapped[str] = mapped_column(String(32))
    event_json: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # The request refused: an identical one (same challenge, signature and client) is
    # answered with this refusal and its event, and adds none (SPEC §5). NULL in rows stored
    # before they were kept.
    signature: Mapped[str | None] = mapped_column(String(144))
    client_id: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("ix_refusals_request", "challenge_id", "signature", "client_id"),
        # Refusals are deleted after their retention period, oldest first.
        Index("ix_refusals_decided_at", "decided_at"),
    )


class DeviceKeyRow(Base):
    """A key a device holds: its binding key first, then keys added under other purposes
    (SPEC §8). Removed when the device is unbound."""

    __tablename__ = "device_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    key_purpose: Mapped[str] = mapped_column(String(32))
    public_key: Mapped[str] = mapped_column(String(130))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # Set by each verified device signature.
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The key that vouched for this one; None for the binding key.
    signed_by_key_id: Mapped[str | None] = mapped_column(String(36))
    # The command that added the key: a redelivery is recognised and answered the same.
    created_by_command: Mapped[str] = mapped_column(String(36), unique=True)
    created_by_request: Mapped[str] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("device_id", "key_purpose", name="uq_device_key_purpose"),)


class DeviceChallengeRow(Base):
    """A challenge a bound device signs (a login, a payment): ``string_to_sign`` kept whole,
    since it is no secret, and its SHA-256, what verification needs."""

    __tablename__ = "device_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    # No foreign key: the device's keys go when it is unbound, its challenges stay.
    key_id: Mapped[str] = mapped_column(String(36))
    key_purpose: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    string_to_sign: Mapped[str] = mapped_column(Text)
    # SHA-256 of string_to_sign while pending, dropped (NULL) when it leaves pending.
    message_digest: Mapped[bytes | None] = mapped_column(LargeBinary(32))
    transaction_json: Mapped[str | None] = mapped_column(Text)
    device_data: Mapped[str | None] = mapped_column(Text)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_by_command: Mapped[str] = mapped_column(String(36), unique=True)
    created_by_request: Mapped[str] = mapped_column(String(128))

    # Unbinding ends a device's open challenges: found by this index, not a scan.
    __table_args__ = (
        Index("ix_device_challenges_device", "device_id", "status"),
        _pending_expiry_index("ix_device_challenges_pending_expiry"),
    )


class DeviceAttemptRow(Base):
    """A counted attempt on a device challenge, as :class:`AttemptRow` is for binding."""

    __tablename__ = "device_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    challenge_id: Mapped[str] = mapped_column(ForeignKey("device_challenges.id"))
    signature: Mapped[str] = mapped_column(String(144))
    outcome: Mapped[str] = mapped_column(String(16))
    number: Mapped[int] = mapped_column(Integer)
    event_json: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("challenge_id", "signature", name="uq_device_attempt_signature"),
    )


class PersonLimitRow(Base):
    """A person's consecutive failed signatures and lock (SPEC §9), per client."""

    __tablename__ = "person_limits"

    client_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The failed attempt that started the lock, and the lock's event (announced again when
    # that attempt is redelivered).
    locked_by: Mapped[str | None] = mapped_column(Text)
    lock_event_json: Mapped[str | None] = mapped_column(Text)
