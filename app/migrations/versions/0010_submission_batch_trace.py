"""Each submission row keeps what the payer's acknowledgment calls its batch (an 837's BHT03, a
clearinghouse's correlation id), so a rejection of the whole batch finds its claims.

Revision ID: 0010
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claim_submission") as batch:
        batch.add_column(sa.Column("batch_trace", sa.String(length=50), nullable=True))
    op.create_index("ix_claim_submission_trace", "claim_submission", ["tenant_id", "batch_trace"])


def downgrade() -> None:
    op.drop_index("ix_claim_submission_trace", table_name="claim_submission")
    with op.batch_alter_table("claim_submission") as batch:
        batch.drop_column("batch_trace")
