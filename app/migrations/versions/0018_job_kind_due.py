"""``ix_job_kind_due`` (status, kind, run_after): the workers take the due jobs of the expedited
kinds (a built claim's submission and send) before other due jobs, one index range per kind.

Revision ID: 0018
Revises: 0017
"""
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_kind_due", "job", ["status", "kind", "run_after"])


def downgrade() -> None:
    op.drop_index("ix_job_kind_due", table_name="job")
