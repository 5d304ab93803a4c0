"""Search-index rows no longer carry a foreign key to their resource row (PostgreSQL).

The store writes index rows only in the statement that writes their resource row and never
deletes resource rows (a deletion is a flagged version), so the constraint guarded nothing the
store could break, while PostgreSQL checked it with one query per index row: 10-15 per Encounter,
and planned from statistics that, when stale, scan the resource table for each. SQLite keeps
the constraint: there the check is an in-process index probe.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("search_token", "search_string", "search_date", "search_reference")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.drop_constraint(f"{table}_res_pk_fkey", table, type_="foreignkey")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.create_foreign_key(f"{table}_res_pk_fkey", table, "resource", ["res_pk"], ["pk"], ondelete="CASCADE")
