"""The hub's tables (SQLAlchemy 2 declarative). Schema changes go through
migrations in backend/migrations; a test fails when these models and the
migrations disagree.

Rules this module owns:

- Nothing accepted is ever deleted: ``log`` (the change log), ``feed_links``
  (every authentic link of every device's feed, accepted or refused),
  ``equivocations`` and ``audit_log`` are append-only.
- ``log.seq`` is assigned by the hub under the ``log_head`` row lock, never by
  an auto-increment (see backend/log.py for why).
- Private keys appear only sealed (``sealed`` columns, wrapped under the KEK).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base

Json = JSON().with_variant(JSON(none_as_null=True), "postgresql")
Stamp = DateTime(timezone=True)


class Agency(Base):
    __tablename__ = "agencies"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Stamp)


class AgencyKey(Base):
    __tablename__ = "agency_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agency: Mapped[str] = mapped_column(ForeignKey("agencies.code"), index=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    retired_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)


class HubKey(Base):
    __tablename__ = "hub_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    retired_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)


class RegistryEntry(Base):
    __tablename__ = "registry_entries"
    index: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    entry: Mapped[dict[str, Any]] = mapped_column(Json)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agency: Mapped[str] = mapped_column(ForeignKey("agencies.code"), index=True)
    officer: Mapped[str] = mapped_column(String(200))
    public_key: Mapped[str] = mapped_column(String(64), unique=True)
    certificate: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | revoked | quarantined
    enrolled_at: Mapped[datetime] = mapped_column(Stamp)
    last_seen_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    last_push_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    last_pull_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    feed_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    feed_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    revoked_after_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class EnrollmentToken(Base):
    __tablename__ = "enrollment_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agency: Mapped[str] = mapped_column(ForeignKey("agencies.code"))
    officer: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Stamp)
    expires_at: Mapped[datetime] = mapped_column(Stamp)
    used_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Agreement(Base):
    __tablename__ = "agreements"
    __table_args__ = (UniqueConstraint("from_agency", "to_agency"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_agency: Mapped[str] = mapped_column(ForeignKey("agencies.code"))
    to_agency: Mapped[str] = mapped_column(ForeignKey("agencies.code"), index=True)
    collections: Mapped[list[str]] = mapped_column(Json)
    withhold: Mapped[list[str]] = mapped_column(Json)
    write: Mapped[list[str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Stamp)


class FeedLink(Base):
    """Every authentic change a device signed, in its feed order, accepted or not."""

    __tablename__ = "feed_links"
    device: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    change_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # accepted | rejected
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    wire: Mapped[dict[str, Any]] = mapped_column(Json)
    received_at: Mapped[datetime] = mapped_column(Stamp)


class HeldChange(Base):
    """A change that arrived ahead of a gap in its device's feed."""

    __tablename__ = "held_changes"
    device: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    wire: Mapped[dict[str, Any]] = mapped_column(Json)
    received_at: Mapped[datetime] = mapped_column(Stamp)


class LogEntry(Base):
    """The change log: every accepted change, numbered in commit order."""

    __tablename__ = "log"
    __table_args__ = (
        Index("ix_log_agency_seq", "agency", "seq"),
        Index("ix_log_resource_agency_seq", "resource_agency", "seq"),
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    change_id: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64))
    chain: Mapped[str] = mapped_column(String(64))  # log head hash after this entry
    device: Mapped[str] = mapped_column(String(64), index=True)
    device_seq: Mapped[int] = mapped_column(BigInteger)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    collection: Mapped[str] = mapped_column(String(32))
    agency: Mapped[str] = mapped_column(String(32))
    # reservations: the agency owning the booked resource, which sees and decides them
    resource_agency: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hlc: Mapped[str] = mapped_column(String(100))
    wire: Mapped[dict[str, Any]] = mapped_column(Json)
    accepted_at: Mapped[datetime] = mapped_column(Stamp)


class LogHead(Base):
    """One row: the log's size and head hash. Locked to append (backend/log.py)."""

    __tablename__ = "log_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    head: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Record(Base):
    """The merged state of one record: every version of every field (sync.merge).

    ``title``, ``status`` and ``search`` are copies of current values kept by
    backend.records.store so the web view can filter, sort and page 100,000
    records on indexes instead of reading JSON.
    """

    __tablename__ = "records"
    __table_args__ = (
        Index("ix_records_updated", "updated_at", "record_id"),
        Index("ix_records_title", "title", "record_id"),
    )
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(32), index=True)
    agency: Mapped[str] = mapped_column(String(32), index=True)
    resource_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)  # reservations
    state: Mapped[dict[str, Any]] = mapped_column(Json)
    values: Mapped[dict[str, Any]] = mapped_column(Json)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_hlc: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(Stamp)
    title: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(32), default="", index=True)
    search: Mapped[str] = mapped_column(Text, default="")


class ConflictRow(Base):
    __tablename__ = "conflicts"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    collection: Mapped[str] = mapped_column(String(32))
    agency: Mapped[str] = mapped_column(String(32), index=True)
    field: Mapped[str] = mapped_column(String(64))
    winner: Mapped[dict[str, Any]] = mapped_column(Json)
    loser: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    detected_at: Mapped[datetime] = mapped_column(Stamp)
    resolved_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolution_change_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class DoubleBookingRow(Base):
    __tablename__ = "double_bookings"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    first: Mapped[str] = mapped_column(String(64))
    second: Mapped[str] = mapped_column(String(64))
    overlap_start: Mapped[str] = mapped_column(String(32))
    overlap_end: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | resolved
    detected_at: Mapped[datetime] = mapped_column(Stamp)
    # resolved by declining one reservation with a hub-signed change (backend/resolutions.py)
    resolved_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    resolution_change_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    declined: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Equivocation(Base):
    """Proof that a device signed two histories: both changes, kept for ever."""

    __tablename__ = "equivocations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    held: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    offered: Mapped[dict[str, Any]] = mapped_column(Json)
    detected_at: Mapped[datetime] = mapped_column(Stamp)


class Nonce(Base):
    __tablename__ = "nonces"
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(Stamp, index=True)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    agency: Mapped[str | None] = mapped_column(String(32), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object: Mapped[str | None] = mapped_column(String(300), nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(Json)
    prev: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    head: Mapped[str | None] = mapped_column(String(64), nullable=True)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | staff
    password_hash: Mapped[str] = mapped_column(String(200))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Stamp)


class JobRun(Base):
    """One row per scheduled job: the claim that makes it run once across processes (backend/jobs.py)."""

    __tablename__ = "job_runs"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime] = mapped_column(Stamp)
    last_started_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    last_finished_at: Mapped[datetime | None] = mapped_column(Stamp, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_summary: Mapped[dict[str, Any] | None] = mapped_column(Json, nullable=True)
    runs: Mapped[int] = mapped_column(BigInteger, default=0)


class WebSession(Base):
    """A web login's server-side session (backend/auth/sessions.py). ``id`` is the
    SHA-256 of the cookie's token, so the table alone cannot be replayed as cookies;
    deleting a user deletes its sessions (ON DELETE CASCADE)."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(Stamp)
    last_seen_at: Mapped[datetime] = mapped_column(Stamp, index=True)
