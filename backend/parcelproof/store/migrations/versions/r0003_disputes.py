"""Revision 0003: disputes (hashes on chain, sealed material and workflow off chain) and their
sealed notes."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.LargeBinary(), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("shipment_id", sa.String(length=128), nullable=False),
        sa.Column("tracking_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("claim_salt", sa.LargeBinary(), nullable=False),
        sa.Column("note_hash", sa.LargeBinary(), nullable=True),
        sa.Column("subject_hash", sa.LargeBinary(), nullable=False),
        sa.Column("evidence_hash", sa.LargeBinary(), nullable=False),
        sa.Column("evidence_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("opened_by", sa.String(length=128), nullable=False),
        sa.Column("opened_at", sa.BigInteger(), nullable=False),
        sa.Column("open_tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("open_block", sa.BigInteger(), nullable=False),
        sa.Column("assignee", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("summary_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("summary_hash", sa.LargeBinary(), nullable=True),
        sa.Column("outcome_hash", sa.LargeBinary(), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("resolve_tx_hash", sa.LargeBinary(), nullable=True),
        sa.Column("resolve_block", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("length(dispute_id) = 32", name=op.f("ck_disputes_dispute_id_length")),
        sa.CheckConstraint(
            "state IN ('open', 'assigned', 'resolved')", name=op.f("ck_disputes_state_known")
        ),
        sa.CheckConstraint(
            "reason IN ('not-delivered', 'damaged', 'wrong-place', 'late', 'other')",
            name=op.f("ck_disputes_reason_known"),
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('upheld', 'rejected', 'settled')",
            name=op.f("ck_disputes_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.shipment_id"],
            name=op.f("fk_disputes_shipment_id_shipments"),
        ),
        sa.PrimaryKeyConstraint("dispute_id", name=op.f("pk_disputes")),
    )
    op.create_table(
        "dispute_notes",
        sa.Column("note_id", sa.String(length=128), nullable=False),
        sa.Column("dispute_id", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('claim', 'comment')", name=op.f("ck_dispute_notes_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.dispute_id"],
            name=op.f("fk_dispute_notes_dispute_id_disputes"),
        ),
        sa.PrimaryKeyConstraint("note_id", name=op.f("pk_dispute_notes")),
    )


def downgrade() -> None:
    op.drop_table("dispute_notes")
    op.drop_table("disputes")
