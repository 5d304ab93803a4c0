"""Claims go to a payer in batches: each submission row names the batch (file) it went in.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claim_submission") as batch:
        batch.add_column(sa.Column("batch_key", sa.String(length=64), nullable=True))
    op.create_index("ix_claim_submission_batch", "claim_submission", ["tenant_id", "batch_key"])


def downgrade() -> None:
    op.drop_index("ix_claim_submission_batch", table_name="claim_submission")
    with op.batch_alter_table("claim_submission") as batch:
        batch.drop_column("batch_key")
