"""One append-only audit table for authentication events and FHIR interactions.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_auth_audit_recorded", table_name="auth_audit_event")
    op.rename_table("auth_audit_event", "audit_event")
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("action", sa.String(length=1), nullable=True))
        batch.add_column(sa.Column("outcome", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("entity", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("patient", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("agent", sa.String(length=200), nullable=True))
    op.create_index("ix_audit_recorded", "audit_event", ["tenant_id", "recorded"])
    op.create_index("ix_audit_entity", "audit_event", ["tenant_id", "entity"])
    op.create_index("ix_audit_patient", "audit_event", ["tenant_id", "patient"])


def downgrade() -> None:
    op.drop_index("ix_audit_patient", table_name="audit_event")
    op.drop_index("ix_audit_entity", table_name="audit_event")
    op.drop_index("ix_audit_recorded", table_name="audit_event")
    with op.batch_alter_table("audit_event") as batch:
        for column in ("agent", "patient", "entity", "outcome", "action"):
            batch.drop_column(column)
    op.rename_table("audit_event", "auth_audit_event")
    op.create_index("ix_auth_audit_recorded", "auth_audit_event", ["tenant_id", "recorded"])
