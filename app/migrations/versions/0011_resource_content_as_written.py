"""Resource documents are stored as written: ``json`` instead of ``jsonb`` (PostgreSQL).

A FHIR decimal's precision is part of its value (``75.00`` is not ``75.0``; ``1e2`` comes back
as ``1e2``). JSONB normalizes numbers and reorders keys; ``json`` checks the document and keeps
its text. Rows written before keep JSONB's rendering (and key order, which the store puts
right on reading). The change rewrites both tables under an exclusive lock: run it in a
maintenance window on a large database. SQLite stores TEXT already.

Revision ID: 0011
Revises: 0010
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TABLES = ("resource", "resource_history")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN content TYPE json USING content::text::json")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN content TYPE jsonb USING content::text::jsonb")
