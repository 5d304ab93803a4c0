"""Claim status follow-up: each payer connection's follow-up days (a contract term, like its
timely-filing days), and one row per status inquiry of a claim (per claim and day).

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("payer_connection") as batch:
        batch.add_column(sa.Column("status_follow_up_days", sa.Integer, nullable=True))
    op.create_table(
        "claim_status_inquiry",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("claim_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("connection_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("trace", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=True),
        sa.Column("answer", sa.String(length=30), nullable=True),
        sa.Column("code", sa.String(length=40), nullable=True),
        sa.Column("asked_at", UTCDateTime(), nullable=False),
        sa.Column("answered_at", UTCDateTime(), nullable=True),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("task_closed_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("tenant_id", "claim_id", "day", name="uq_claim_status_inquiry_day"),
    )
    op.create_index("ix_claim_status_inquiry_trace", "claim_status_inquiry", ["tenant_id", "trace"])


def downgrade() -> None:
    op.drop_index("ix_claim_status_inquiry_trace", table_name="claim_status_inquiry")
    op.drop_table("claim_status_inquiry")
    with op.batch_alter_table("payer_connection") as batch:
        batch.drop_column("status_follow_up_days")
