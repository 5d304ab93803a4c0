"""Denial patterns: every denied (payer, procedure code, reason) of a claim, counted to propose
payer rules, and each practice's proposal policy.

Revision ID: 0013
Revises: 0012
"""
from alembic import op
import sqlalchemy as sa

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "denial_observation",
        sa.Column("tenant_id", sa.String(length=64), primary_key=True),
        sa.Column("payer", sa.String(length=100), primary_key=True),
        sa.Column("code", sa.String(length=16), primary_key=True),
        sa.Column("reason", sa.String(length=16), primary_key=True),
        sa.Column("claim_id", sa.String(length=64), primary_key=True),
        sa.Column("denied_on", sa.Date(), nullable=False),
        sa.Column("proposal", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_denial_observation_window", "denial_observation",
                    ["tenant_id", "payer", "code", "reason", "denied_on"])
    op.create_table(
        "rule_proposal_policy",
        sa.Column("tenant_id", sa.String(length=64), primary_key=True),
        sa.Column("min_claims", sa.Integer(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rule_proposal_policy")
    op.drop_index("ix_denial_observation_window", table_name="denial_observation")
    op.drop_table("denial_observation")
