"""Users' access to practices other than their own (billing companies serve several).

Revision ID: 0013_practice_grants
Revises: 0012_claim_facts
"""
from alembic import op
import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

revision = "0013_practice_grants"
down_revision = "0012_claim_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_practice_grant",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), sa.ForeignKey("tenant.id"), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "tenant_id", name="uq_practice_grant"),
    )
    op.create_index("ix_auth_practice_grant_user_id", "auth_practice_grant", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_auth_practice_grant_user_id", table_name="auth_practice_grant")
    op.drop_table("auth_practice_grant")
