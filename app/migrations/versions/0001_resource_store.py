"""Resource store: current versions, history, search indexes, tenants.

Revision ID: 0001
Revises: 
"""
from alembic import op
import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

from app.db import JSONDocument


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('resource',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', UTCDateTime(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', JSONDocument(), nullable=False),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('tenant_id', 'type', 'id', name='uq_resource_identity')
    )
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.create_index('ix_resource_type_updated', ['tenant_id', 'type', 'last_updated'], unique=False)

    op.create_table('resource_history',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('last_updated', UTCDateTime(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('content', JSONDocument(), nullable=True),
    sa.PrimaryKeyConstraint('pk'),
    sa.UniqueConstraint('tenant_id', 'type', 'id', 'version_id', name='uq_history_version')
    )
    with op.batch_alter_table('resource_history', schema=None) as batch_op:
        batch_op.create_index('ix_history_type_updated', ['tenant_id', 'type', 'last_updated'], unique=False)
        batch_op.create_index('ix_history_updated', ['tenant_id', 'last_updated'], unique=False)

    op.create_table('tenant',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('search_date',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('start', UTCDateTime(), nullable=False),
    sa.Column('end', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['res_pk'], ['resource.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.create_index('ix_date_lookup', ['tenant_id', 'type', 'param', 'start'], unique=False)
        batch_op.create_index('ix_date_res', ['res_pk', 'param'], unique=False)

    op.create_table('search_reference',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('target_type', sa.String(length=64), nullable=False),
    sa.Column('target_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['res_pk'], ['resource.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.create_index('ix_reference_lookup', ['tenant_id', 'type', 'param', 'target_id'], unique=False)
        batch_op.create_index('ix_reference_res', ['res_pk', 'param'], unique=False)
        batch_op.create_index('ix_reference_target', ['tenant_id', 'target_type', 'target_id'], unique=False)

    op.create_table('search_string',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=255), nullable=False),
    sa.Column('exact', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['res_pk'], ['resource.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.create_index('ix_string_lookup', ['tenant_id', 'type', 'param', 'value'], unique=False)
        batch_op.create_index('ix_string_res', ['res_pk', 'param'], unique=False)

    op.create_table('search_token',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('res_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('param', sa.String(length=64), nullable=False),
    sa.Column('system', sa.String(length=255), nullable=True),
    sa.Column('code', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['res_pk'], ['resource.pk'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.create_index('ix_token_lookup', ['tenant_id', 'type', 'param', 'code'], unique=False)
        batch_op.create_index('ix_token_res', ['res_pk', 'param'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('search_token', schema=None) as batch_op:
        batch_op.drop_index('ix_token_res')
        batch_op.drop_index('ix_token_lookup')

    op.drop_table('search_token')
    with op.batch_alter_table('search_string', schema=None) as batch_op:
        batch_op.drop_index('ix_string_res')
        batch_op.drop_index('ix_string_lookup')

    op.drop_table('search_string')
    with op.batch_alter_table('search_reference', schema=None) as batch_op:
        batch_op.drop_index('ix_reference_target')
        batch_op.drop_index('ix_reference_res')
        batch_op.drop_index('ix_reference_lookup')

    op.drop_table('search_reference')
    with op.batch_alter_table('search_date', schema=None) as batch_op:
        batch_op.drop_index('ix_date_res')
        batch_op.drop_index('ix_date_lookup')

    op.drop_table('search_date')
    op.drop_table('tenant')
    with op.batch_alter_table('resource_history', schema=None) as batch_op:
        batch_op.drop_index('ix_history_updated')
        batch_op.drop_index('ix_history_type_updated')

    op.drop_table('resource_history')
    with op.batch_alter_table('resource', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_type_updated')

    op.drop_table('resource')
