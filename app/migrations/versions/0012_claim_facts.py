"""Claim facts for the revenue-cycle KPIs (``app.measures``): per claim, per claim code, per
remittance, per eligibility answer and per written-off denial. Filled from the stored resources
by ``therabridge measures rebuild`` (run it once after upgrading a database that has claims);
kept in step by every write afterwards.

Revision ID: 0012_claim_facts
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = "0012_claim_facts"
down_revision = "0011"
branch_labels = None
depends_on = None


def _id(name: str, **kw: object) -> sa.Column:
    return sa.Column(name, sa.String(length=64), **kw)


def upgrade() -> None:
    op.create_table(
        "claim_fact",
        _id("tenant_id", primary_key=True), _id("claim_id", primary_key=True), _id("patient_id"),
        sa.Column("payer", sa.String(length=200)), sa.Column("clinician", sa.String(length=200)),
        sa.Column("service_date", sa.Date()), sa.Column("charge_cents", sa.BigInteger(), nullable=False),
        sa.Column("is_void", sa.Boolean(), nullable=False), sa.Column("excluded", sa.Boolean(), nullable=False),
        _id("prior_claim_id"), sa.Column("replaces_on", sa.Date()),
        sa.Column("submitted_on", sa.Date()), sa.Column("front_accepted_on", sa.Date()),
        sa.Column("rejected_on", sa.Date()), sa.Column("adjudicated_on", sa.Date()),
        sa.Column("first_outcome", sa.String(length=16)),
        sa.Column("manual", sa.Boolean(), nullable=False), sa.Column("pre_auth", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_claim_fact_submitted", "claim_fact", ["tenant_id", "submitted_on"])
    op.create_index("ix_claim_fact_adjudicated", "claim_fact", ["tenant_id", "adjudicated_on"])
    op.create_index("ix_claim_fact_service", "claim_fact", ["tenant_id", "service_date"])
    op.create_index("ix_claim_fact_prior", "claim_fact", ["tenant_id", "prior_claim_id"])
    op.create_table(
        "claim_code_fact",
        _id("tenant_id", primary_key=True), _id("claim_id", primary_key=True),
        sa.Column("kind", sa.String(length=16), primary_key=True), sa.Column("value", sa.String(length=32), primary_key=True),
    )
    op.create_table(
        "remit_fact",
        _id("tenant_id", primary_key=True), _id("eob_id", primary_key=True), _id("claim_id", nullable=False),
        sa.Column("posted_on", sa.Date(), nullable=False), sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("reversal", sa.Boolean(), nullable=False), sa.Column("paid_cents", sa.BigInteger(), nullable=False),
        sa.Column("contractual_cents", sa.BigInteger(), nullable=False),
        sa.Column("closing_cents", sa.BigInteger(), nullable=False),
        sa.Column("denied_cents", sa.BigInteger(), nullable=False),
        sa.Column("auth_denial", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_remit_fact_claim", "remit_fact", ["tenant_id", "claim_id"])
    op.create_index("ix_remit_fact_posted", "remit_fact", ["tenant_id", "posted_on"])
    op.create_table(
        "eligibility_fact",
        _id("tenant_id", primary_key=True), _id("response_id", primary_key=True), _id("patient_id"),
        sa.Column("answered_on", sa.Date()), sa.Column("ok", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_eligibility_fact_patient", "eligibility_fact", ["tenant_id", "patient_id", "answered_on"])
    op.create_table(
        "writeoff_fact",
        _id("tenant_id", primary_key=True), _id("task_id", primary_key=True), _id("claim_id", nullable=False),
        sa.Column("written_off_on", sa.Date(), nullable=False),
    )
    op.create_index("ix_writeoff_fact_claim", "writeoff_fact", ["tenant_id", "claim_id"])


def downgrade() -> None:
    for table in ("writeoff_fact", "eligibility_fact", "remit_fact", "claim_code_fact", "claim_fact"):
        op.drop_table(table)
