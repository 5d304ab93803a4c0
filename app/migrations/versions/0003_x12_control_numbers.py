"""X12 interchange, group and transaction-set control-number sequences.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "x12_control_number",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("partner", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=3), nullable=False),
        sa.Column("last_value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "partner", "kind"),
    )


def downgrade() -> None:
    op.drop_table("x12_control_number")
