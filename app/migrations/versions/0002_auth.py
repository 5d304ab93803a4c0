"""Authorization server: clients, users, signing keys, codes, tokens, replay cache, audit.

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlmodel.sql.sqltypes import UTCDateTime

from app.db import JSONDocument


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auth_assertion_jti',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('jti', sa.String(length=255), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_id', 'jti', name='uq_assertion_jti')
    )
    with op.batch_alter_table('auth_assertion_jti', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_assertion_jti_expires_at'), ['expires_at'], unique=False)

    op.create_table('auth_audit_event',
    sa.Column('pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=True),
    sa.Column('recorded', UTCDateTime(), nullable=False),
    sa.Column('content', JSONDocument(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    with op.batch_alter_table('auth_audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_auth_audit_recorded', ['tenant_id', 'recorded'], unique=False)

    op.create_table('auth_code',
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('redirect_uri', sa.String(length=2000), nullable=False),
    sa.Column('code_challenge', sa.String(length=128), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('code_hash')
    )
    with op.batch_alter_table('auth_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_code_grant_id'), ['grant_id'], unique=False)

    op.create_table('auth_pending',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('params', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('browser_hash', sa.String(length=64), nullable=True),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id_hash')
    )
    op.create_table('auth_refresh_token',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('grant_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('context', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('rotated_to', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('auth_refresh_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_refresh_token_grant_id'), ['grant_id'], unique=False)

    op.create_table('auth_revoked',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('auth_revoked', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_revoked_revoked_at'), ['revoked_at'], unique=False)

    op.create_table('auth_signing_key',
    sa.Column('kid', sa.String(length=64), nullable=False),
    sa.Column('alg', sa.String(length=8), nullable=False),
    sa.Column('private_jwk', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('retire_after', UTCDateTime(), nullable=True),
    sa.Column('publish_until', UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('kid')
    )
    op.create_table('auth_client',
    sa.Column('client_id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=True),
    sa.Column('jwks', sa.Text(), nullable=True),
    sa.Column('jwks_uri', sa.String(length=2000), nullable=True),
    sa.Column('redirect_uris', sa.Text(), nullable=False),
    sa.Column('scope', sa.Text(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('client_id')
    )
    with op.batch_alter_table('auth_client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auth_client_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('auth_initial_token',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.Column('used_at', UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_table('auth_launch',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('patient', sa.String(length=64), nullable=True),
    sa.Column('encounter', sa.String(length=64), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.Column('expires_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('auth_user',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('fhir_user', sa.String(length=200), nullable=True),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', UTCDateTime(), nullable=True),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'username', name='uq_auth_user_name')
    )


def downgrade() -> None:
    op.drop_table('auth_user')
    op.drop_table('auth_launch')
    op.drop_table('auth_initial_token')
    with op.batch_alter_table('auth_client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_client_tenant_id'))

    op.drop_table('auth_client')
    op.drop_table('auth_signing_key')
    with op.batch_alter_table('auth_revoked', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_revoked_revoked_at'))

    op.drop_table('auth_revoked')
    with op.batch_alter_table('auth_refresh_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_refresh_token_grant_id'))

    op.drop_table('auth_refresh_token')
    op.drop_table('auth_pending')
    with op.batch_alter_table('auth_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_code_grant_id'))

    op.drop_table('auth_code')
    with op.batch_alter_table('auth_audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_auth_audit_recorded')

    op.drop_table('auth_audit_event')
    with op.batch_alter_table('auth_assertion_jti', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auth_assertion_jti_expires_at'))

    op.drop_table('auth_assertion_jti')
