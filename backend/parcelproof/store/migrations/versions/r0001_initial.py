"""Revision 0001: the initial schema (shipments, events, Merkle log, checkpoints, clients)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "shipments",
        sa.Column("shipment_id", sa.String(length=128), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("ref", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped_key_kid", sa.String(length=64), nullable=False),
        sa.Column("wrapped_key_blob", sa.LargeBinary(), nullable=True),
        sa.Column("sealed_details", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_factor", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("length(ref) = 32", name=op.f("ck_shipments_ref_length")),
        sa.PrimaryKeyConstraint("shipment_id", name=op.f("pk_shipments")),
        sa.UniqueConstraint("log_id", "ref", name=op.f("uq_shipments_log_id_ref")),
    )
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("shipment_id", sa.String(length=128), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("previous", sa.LargeBinary(), nullable=False),
        sa.Column("commitment", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_index", sa.BigInteger(), nullable=False),
        sa.Column("event_time", sa.BigInteger(), nullable=False),
        sa.Column("agent", sa.String(length=42), nullable=False),
        sa.Column("signature", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_openings", sa.LargeBinary(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("request_digest", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("leaf_index >= 0", name=op.f("ck_events_leaf_index_not_negative")),
        sa.CheckConstraint("sequence >= 0", name=op.f("ck_events_sequence_not_negative")),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.shipment_id"],
            name=op.f("fk_events_shipment_id_shipments"),
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_events")),
        sa.UniqueConstraint("log_id", "leaf_index", name=op.f("uq_events_log_id_leaf_index")),
        sa.UniqueConstraint("shipment_id", "sequence", name=op.f("uq_events_shipment_id_sequence")),
    )
    op.create_table(
        "log_nodes",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint('"index" >= 0', name=op.f("ck_log_nodes_index_not_negative")),
        sa.CheckConstraint("level >= 0 AND level < 64", name=op.f("ck_log_nodes_level_range")),
        sa.PrimaryKeyConstraint("log_id", "level", "index", name=op.f("pk_log_nodes")),
    )
    op.create_table(
        "log_state",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("size >= 0", name=op.f("ck_log_state_size_not_negative")),
        sa.PrimaryKeyConstraint("log_id", name=op.f("pk_log_state")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('sent', 'anchored', 'confirmed')",
            name=op.f("ck_checkpoints_status_known"),
        ),
        sa.CheckConstraint("size > 0", name=op.f("ck_checkpoints_size_positive")),
        sa.PrimaryKeyConstraint("log_id", "size", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "api_clients",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("log_id", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_api_clients")),
    )


def downgrade() -> None:
    for table in ("api_clients", "checkpoints", "log_state", "log_nodes", "events", "shipments"):
        op.drop_table(table)
