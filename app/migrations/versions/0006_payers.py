"""Payer directory, claim submissions and inbound payer messages.

Revision ID: 0006
Revises: 0005
"""
from alembic import op
import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "payer_connection",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=False),
        sa.Column("payer_id", sa.String(80), nullable=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("credentials", sa.Text, nullable=True),
        sa.Column("profile", sa.String(40), nullable=True),
        sa.Column("timely_filing_days", sa.Integer, nullable=True),
        sa.Column("auto_submit", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("tenant_id", "organization_id", name="uq_payer_connection_org"),
    )
    op.create_table(
        "claim_submission",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("submission_key", sa.String(64), nullable=False),
        sa.Column("claim_id", sa.String(64), nullable=False),
        sa.Column("connection_pk", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=True),
        sa.Column("group_control", sa.String(20), nullable=True),
        sa.Column("set_controls", sa.String(200), nullable=True),
        sa.Column("submission_id", sa.String(200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("submitted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("tenant_id", "submission_key", name="uq_claim_submission_key"),
    )
    op.create_index("ix_claim_submission_claim", "claim_submission", ["tenant_id", "claim_id"])
    op.create_index("ix_claim_submission_group", "claim_submission", ["tenant_id", "group_control"])
    op.create_table(
        "inbound_message",
        sa.Column("pk", BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("connection_pk", sa.Integer, nullable=True),
        sa.Column("payer", sa.String(64), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(20), nullable=True),
        sa.Column("content_type", sa.String(20), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("tenant_id", "sha256", name="uq_inbound_message_sha"),
    )
    op.create_index("ix_inbound_message_status", "inbound_message", ["tenant_id", "status"])


def downgrade() -> None:
    op.drop_index("ix_inbound_message_status", table_name="inbound_message")
    op.drop_table("inbound_message")
    op.drop_index("ix_claim_submission_group", table_name="claim_submission")
    op.drop_index("ix_claim_submission_claim", table_name="claim_submission")
    op.drop_table("claim_submission")
    op.drop_table("payer_connection")
