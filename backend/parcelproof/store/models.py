"""SQLAlchemy 2 table models of a node's off-chain state; nothing personal is stored in clear."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Deterministic constraint names, so the hand-written migration and the models agree exactly.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHECKPOINT_STATUSES = ("sent", "anchored", "confirmed")
ID_LENGTH = 128  # envelope.MAX_ID_LENGTH: shipment and event ids are bound into AEAD data
KID_LENGTH = 64
ADDRESS_LENGTH = 42


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _log_id() -> Mapped[bytes]:
    return mapped_column(LargeBinary, nullable=False)


class ShipmentRow(Base):
    """A shipment: its HMAC reference, wrapped data key and sealed details and second factor."""

    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("log_id", "ref"),
        CheckConstraint("length(ref) = 32", name="ref_length"),
    )

    shipment_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    log_id: Mapped[bytes] = _log_id()
    ref: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    wrapped_key_kid: Mapped[str] = mapped_column(String(KID_LENGTH), nullable=False)
    # NULL once the shipment's data key was destroyed (crypto-shredding).
    wrapped_key_blob: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sealed_details: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sealed_factor: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)


class EventRow(Base):
    """One event: commitment, signature, hash-chain link and leaf index; fields sealed."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("shipment_id", "sequence"),
        UniqueConstraint("log_id", "leaf_index"),
        CheckConstraint("sequence >= 0", name="sequence_not_negative"),
        CheckConstraint("leaf_index >= 0", name="leaf_index_not_negative"),
    )

    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    log_id: Mapped[bytes] = _log_id()
    shipment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("shipments.shipment_id"), nullable=False
    )
    sequence: Mapped[int] = mapped_column(BigInteger, nullable=False)
    previous: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    commitment: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    leaf_index: Mapped[int] = mapped_column(BigInteger, nullable=False)
    event_time: Mapped[int] = mapped_column(BigInteger, nullable=False)
    agent: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), nullable=False)
    signature: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sealed_openings: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    recorded_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    request_digest: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogNodeRow(Base):
    """A leaf hash (level 0) or the hash of a completed perfect subtree of the Merkle log."""

    __tablename__ = "log_nodes"
    __table_args__ = (
        CheckConstraint("level >= 0 AND level < 64", name="level_range"),
        CheckConstraint('"index" >= 0', name="index_not_negative"),
    )

    log_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class LogStateRow(Base):
    """The log's size; appends lock this row to serialise."""

    __tablename__ = "log_state"
    __table_args__ = (CheckConstraint("size >= 0", name="size_not_negative"),)

    log_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)


class CheckpointRow(Base):
    """A checkpoint of the log on its way to the ledger: sent, anchored, then confirmed."""

    __tablename__ = "checkpoints"
    __table_args__ = (
        CheckConstraint(
            "status IN ('sent', 'anchored', 'confirmed')",  # keep in step with CHECKPOINT_STATUSES
            name="status_known",
        ),
        CheckConstraint("size > 0", name="size_positive"),
    )

    log_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    nonce: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ApiClientRow(Base):
    """A machine client of the node's API: a hashed secret and its scopes, never the secret."""

    __tablename__ = "api_clients"

    client_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    log_id: Mapped[bytes] = _log_id()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False)  # comma-separated, sorted
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
