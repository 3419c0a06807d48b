"""SQLAlchemy 2 table models of a node's off-chain state; nothing personal is stored in clear."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
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


# --- staff accounts (revision 0002) ----------------------------------------------------------

STAFF_ROLES = ("courier-operator", "dispute-resolver", "consortium-admin")
SESSION_KINDS = ("pending", "session")


class StaffUserRow(Base):
    """A person operating the node: argon2id password hash, role, sealed TOTP secret, lockout."""

    __tablename__ = "staff_users"
    __table_args__ = (
        UniqueConstraint("log_id", "username"),
        CheckConstraint(
            "role IN ('courier-operator', 'dispute-resolver', 'consortium-admin')",
            name="role_known",  # keep in step with STAFF_ROLES
        ),
        CheckConstraint("failed_attempts >= 0", name="failed_attempts_not_negative"),
    )

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    log_id: Mapped[bytes] = _log_id()
    username: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    # The TOTP secret, sealed under the node's key-encryption keyring; NULL until enrolled.
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    totp_confirmed: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # The last TOTP time step accepted: a code of that step or earlier is a replay.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    disabled_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class StaffRecoveryCodeRow(Base):
    """A single-use recovery code of a staff user, kept only as a SHA-256 (80 random bits)."""

    __tablename__ = "staff_recovery_codes"

    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("staff_users.user_id"), primary_key=True
    )
    code_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class StaffPasskeyRow(Base):
    """A WebAuthn credential (passkey) of a staff user: its public key and signature counter."""

    __tablename__ = "staff_passkeys"

    credential_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("staff_users.user_id"), nullable=False
    )
    public_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    sign_count: Mapped[int] = mapped_column(BigInteger, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class StaffSessionRow(Base):
    """A staff login: a pending one (password checked, second factor due) or a short-lived
    session; only the SHA-256 of its bearer secret is kept."""

    __tablename__ = "staff_sessions"
    __table_args__ = (CheckConstraint("kind IN ('pending', 'session')", name="kind_known"),)

    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("staff_users.user_id"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    mfa: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # A WebAuthn challenge awaiting its answer (registration or assertion), if any.
    challenge: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


# --- audit log and erasure (revision 0002) ---------------------------------------------------


class AuditEntryRow(Base):
    """One entry of the node's hash-chained audit log (no personal data: ids and actions)."""

    __tablename__ = "audit_log"
    __table_args__ = (CheckConstraint("seq >= 0", name="seq_not_negative"),)

    log_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    actor: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    detail: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON
    prev_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class AuditAnchorRow(Base):
    """An audit-log head (size, hash) sent to the ledger, and where it was mined."""

    __tablename__ = "audit_anchors"
    __table_args__ = (CheckConstraint("size > 0", name="size_positive"),)

    log_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    head: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)


class ErasureRow(Base):
    """A shipment whose keys were destroyed: when, why, and the signed erasure receipt."""

    __tablename__ = "erasures"

    shipment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("shipments.shipment_id"), primary_key=True
    )
    log_id: Mapped[bytes] = _log_id()
    erased_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    receipt: Mapped[str] = mapped_column(Text, nullable=False)  # JSON, signed


# --- disputes (revision 0003) ----------------------------------------------------------------


class DisputeRow(Base):
    """A dispute about this courier's records: what the ledger holds (its hashes and the
    transactions), the workflow state, and the sealed material behind the hashes. Personal data
    (the tracking number, the evidence snapshot, the resolver's summary) is sealed under the
    node's key-encryption keyring; ids, codes and hashes are in clear."""

    __tablename__ = "disputes"
    __table_args__ = (
        CheckConstraint("length(dispute_id) = 32", name="dispute_id_length"),
        CheckConstraint("state IN ('open', 'assigned', 'resolved')", name="state_known"),
        CheckConstraint(
            "reason IN ('not-delivered', 'damaged', 'wrong-place', 'late', 'other')",
            name="reason_known",  # keep in step with service.disputes.REASONS
        ),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('upheld', 'rejected', 'settled')",
            name="outcome_known",  # keep in step with service.disputes.OUTCOMES
        ),
    )

    dispute_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    log_id: Mapped[bytes] = _log_id()
    shipment_id: Mapped[str] = mapped_column(
        String(ID_LENGTH), ForeignKey("shipments.shipment_id"), nullable=False
    )
    tracking_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    events: Mapped[str] = mapped_column(Text, nullable=False)  # JSON: log id, sequence, commitment
    reason: Mapped[str] = mapped_column(String(32), nullable=False)
    claim_salt: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    note_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    subject_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    evidence_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    evidence_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    opened_by: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    opened_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    open_tx_hash: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    open_block: Mapped[int] = mapped_column(BigInteger, nullable=False)
    assignee: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    summary_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    summary_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    outcome_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    resolve_tx_hash: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    resolve_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class DisputeNoteRow(Base):
    """A note on a dispute (the opener's statement or a resolver's comment), sealed under the
    node's keyring: staff and customers write prose, which may hold personal data."""

    __tablename__ = "dispute_notes"
    __table_args__ = (CheckConstraint("kind IN ('claim', 'comment')", name="kind_known"),)

    note_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    dispute_id: Mapped[bytes] = mapped_column(
        LargeBinary, ForeignKey("disputes.dispute_id"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    author: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


# --- webhooks (revision 0004) ----------------------------------------------------------------

WEBHOOK_DELIVERY_STATES = ("pending", "retrying", "delivered", "failed", "cancelled")


class WebhookSubscriptionRow(Base):
    """A subscriber's URL, the event types it wants and its signing secret (sealed under the
    node's key-encryption keyring, never in clear). Deleted subscriptions keep their row (and
    delivery log) with ``deleted_at`` set."""

    __tablename__ = "webhook_subscriptions"

    subscription_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    log_id: Mapped[bytes] = _log_id()
    url: Mapped[str] = mapped_column(String(2048), nullable=False)
    event_types: Mapped[str] = mapped_column(Text, nullable=False)  # comma-separated, sorted
    description: Mapped[str] = mapped_column(String(200), nullable=False)
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_by: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebhookDeliveryRow(Base):
    """One event owed to one subscription (the outbox): its state, attempts and next try. The
    body is not stored: it is rebuilt from ``source`` (an event id, a checkpoint size) at each
    attempt, so nothing sealed elsewhere lands here in clear."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id"),
        CheckConstraint(
            "state IN ('pending', 'retrying', 'delivered', 'failed', 'cancelled')",
            name="state_known",  # keep in step with WEBHOOK_DELIVERY_STATES
        ),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
    )

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook_subscriptions.subscription_id"), nullable=False
    )
    log_id: Mapped[bytes] = _log_id()
    event_id: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    source: Mapped[str] = mapped_column(String(ID_LENGTH), nullable=False)
    created_at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    last_attempt_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class WebhookAttemptRow(Base):
    """One HTTP attempt of a delivery: when, the answer's status or the error, how long."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("webhook_deliveries.delivery_id"), primary_key=True
    )
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)


class WebhookCursorRow(Base):
    """How far the webhook dispatcher has turned a log's events (next leaf index) and
    checkpoints (largest size announced) into deliveries."""

    __tablename__ = "webhook_cursors"

    log_id: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
