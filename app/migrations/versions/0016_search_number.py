"""The ``search_number`` index table: number search parameters (amounts, scores), stored as
whole ten-thousandths so sums and comparisons are exact on SQLite and PostgreSQL.

Resources written before this revision get their number rows when they are next written; a
search on a number parameter does not find them before that.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "search_number",
        sa.Column("pk", BigId, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("res_pk", BigId, nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("pk"),
    )
    with op.batch_alter_table("search_number", schema=None) as batch_op:
        batch_op.create_index("ix_number_lookup", ["tenant_id", "type", "param", "value"], unique=False)
        batch_op.create_index("ix_number_res", ["res_pk", "param"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("search_number", schema=None) as batch_op:
        batch_op.drop_index("ix_number_res")
        batch_op.drop_index("ix_number_lookup")
    op.drop_table("search_number")
