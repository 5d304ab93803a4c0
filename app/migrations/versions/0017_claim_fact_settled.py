"""``claim_fact.settled_cents``: what a claim's active remittances settle (paid plus the
adjustments that close A/R), kept by every remittance write, so today's A/R aging reads one row
per claim instead of summing every remittance; and ``claim_fact.cancelled`` (the claim's status
is ``cancelled``), which the A/R leaves out. Both filled here: the first from the remittance
facts, the second from the claims' status index.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("claim_fact", sa.Column("settled_cents", sa.BigInteger(), nullable=False, server_default="0"))
    op.add_column("claim_fact", sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute("""
        UPDATE claim_fact SET cancelled = TRUE WHERE EXISTS (
          SELECT 1 FROM resource r JOIN search_token t ON t.res_pk = r.pk
          WHERE r.tenant_id = claim_fact.tenant_id AND r.type = 'Claim' AND r.id = claim_fact.claim_id
            AND NOT r.deleted AND t.param = 'status' AND t.code = 'cancelled')
    """)
    op.execute("""
        UPDATE claim_fact SET settled_cents = COALESCE(
          (SELECT SUM(r.paid_cents + r.closing_cents) FROM remit_fact r
           WHERE r.tenant_id = claim_fact.tenant_id AND r.claim_id = claim_fact.claim_id AND r.active), 0)
    """)


def downgrade() -> None:
    with op.batch_alter_table("claim_fact", schema=None) as batch_op:
        batch_op.drop_column("settled_cents")
        batch_op.drop_column("cancelled")
