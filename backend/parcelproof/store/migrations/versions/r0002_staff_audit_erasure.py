"""Revision 0002: staff accounts (passwords, TOTP, passkeys, sessions), audit log, erasures."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = (
    "staff_sessions",
    "staff_recovery_codes",
    "staff_passkeys",
    "erasures",
    "staff_users",
    "audit_log",
    "audit_anchors",
)


def upgrade() -> None:
    op.create_table(
        "audit_anchors",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("head", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("size > 0", name=op.f("ck_audit_anchors_size_positive")),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_audit_anchors")),
    )
    op.create_table(
        "audit_log",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(), nullable=False),
        sa.Column("entry_hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_audit_log_seq_not_negative")),
        sa.PrimaryKeyConstraint("log_id", "seq", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "staff_users",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("totp_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("totp_confirmed", sa.Boolean(), nullable=False),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("disabled_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "role IN ('courier-operator', 'dispute-resolver', 'consortium-admin')",
            name=op.f("ck_staff_users_role_known"),
        ),
        sa.CheckConstraint(
            "failed_attempts >= 0", name=op.f("ck_staff_users_failed_attempts_not_negative")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("log_id", "username", name=op.f("uq_staff_users_log_id_username")),
    )
    op.create_table(
        "erasures",
        sa.Column("shipment_id", sa.String(length=128), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("erased_at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("receipt", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.shipment_id"],
            name=op.f("fk_erasures_shipment_id_shipments"),
        ),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_erasures")),
    )
    op.create_table(
        "staff_passkeys",
        sa.Column("credential_id", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_users.user_id"], name=op.f("fk_staff_passkeys_user_id_staff_users")
        ),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_staff_passkeys")),
    )
    op.create_table(
        "staff_recovery_codes",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["staff_users.user_id"],
            name=op.f("fk_staff_recovery_codes_user_id_staff_users"),
        ),
        sa.PrimaryKeyConstraint("user_id", "code_hash", name=op.f("pk_staff_recovery_codes")),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("mfa", sa.Boolean(), nullable=False),
        sa.Column("challenge", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('pending', 'session')", name=op.f("ck_staff_sessions_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["staff_users.user_id"], name=op.f("fk_staff_sessions_user_id_staff_users")
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_staff_sessions")),
    )


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
