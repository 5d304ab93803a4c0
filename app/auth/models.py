"""Tables of the authorization server.

Everything a second replica needs lives here, not in process memory: signing keys, the
``jti`` replay cache, codes, refresh tokens and the revocation list. Secrets we generate are
stored as SHA-256 digests (``*_hash`` columns, see ``app.auth.crypto``); passwords as argon2.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import BigId, JSONDocument

# Client kinds: how a client authenticates at the token endpoint.
PUBLIC = "public"          # PKCE only, no secret (SMART "client-public")
SECRET = "secret"          # client_secret_basic (SMART "client-confidential-symmetric")
JWKS = "jwks"              # private_key_jwt, keys registered by value
JWKS_URI = "jwks_uri"      # private_key_jwt, keys fetched from the client's URL
ASYMMETRIC_KINDS = frozenset({JWKS, JWKS_URI})


class AuthClient(SQLModel, table=True):
    __tablename__ = "auth_client"
    client_id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=64, index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    secret_hash: str | None = Field(default=None, max_length=64)
    jwks: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    jwks_uri: str | None = Field(default=None, max_length=2000)
    redirect_uris: str = Field(default="[]", sa_column=sa.Column(sa.Text, nullable=False))  # JSON list
    scope: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # the most it may be granted
    created_at: datetime


class AuthUser(SQLModel, table=True):
    __tablename__ = "auth_user"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "username", name="uq_auth_user_name"),)
    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str = Field(foreign_key="tenant.id", max_length=64)
    username: str = Field(max_length=128)
    password_hash: str = Field(max_length=255)
    role: str = Field(max_length=32)
    fhir_user: str | None = Field(default=None, max_length=200)
    failed_logins: int = 0
    locked_until: datetime | None = None
    created_at: datetime


class SigningKey(SQLModel, table=True):
    """A server key. ``retire_after``: stop signing with it; ``publish_until``: drop it from
    the JWKS (set to retirement + the longest lifetime of anything it signed)."""

    __tablename__ = "auth_signing_key"
    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=8)
    private_jwk: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime
    retire_after: datetime | None = None
    publish_until: datetime | None = None


class AssertionJti(SQLModel, table=True):
    """Replay cache for client assertions (SAL-ASYM: reject a ``jti`` seen before)."""

    __tablename__ = "auth_assertion_jti"
    __table_args__ = (sa.UniqueConstraint("client_id", "jti", name="uq_assertion_jti"),)
    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    client_id: str = Field(max_length=64)
    jti: str = Field(max_length=255)
    expires_at: datetime = Field(index=True)


class Granted(SQLModel):
    """What a grant gave, kept on each code and refresh token it issued: whose grant, to which
    client and person, which scopes and launch context."""

    grant_id: str = Field(max_length=64, index=True)
    tenant_id: str = Field(max_length=64)
    client_id: str = Field(max_length=64)
    user_id: int | None = None
    scope: str = Field(sa_type=sa.Text, nullable=False)
    context: str = Field(default="{}", sa_type=sa.Text, nullable=False)  # JSON


class AuthorizationCode(Granted, table=True):
    __tablename__ = "auth_code"
    code_hash: str = Field(primary_key=True, max_length=64)
    redirect_uri: str = Field(max_length=2000)
    code_challenge: str = Field(max_length=128)
    expires_at: datetime
    used_at: datetime | None = None


class RefreshToken(Granted, table=True):
    __tablename__ = "auth_refresh_token"
    token_hash: str = Field(primary_key=True, max_length=64)
    created_at: datetime
    expires_at: datetime
    revoked: bool = False
    rotated_to: str | None = Field(default=None, max_length=64)


class LaunchContext(SQLModel, table=True):
    """An EHR launch minted by the server; apps get its id as ``launch=…`` (SAL-LAUNCH)."""

    __tablename__ = "auth_launch"
    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=64)
    patient: str | None = Field(default=None, max_length=64)
    encounter: str | None = Field(default=None, max_length=64)
    created_at: datetime
    expires_at: datetime


class InitialAccessToken(SQLModel, table=True):
    """RFC 7591 §3: dynamic registration needs one of these, issued by an admin."""

    __tablename__ = "auth_initial_token"
    token_hash: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenant.id", max_length=64)
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


class RevokedToken(SQLModel, table=True):
    """Revoked access-token ``jti`` values and grant ids (a grant id revokes every token of
    one authorization: its access tokens and its refresh-token chain)."""

    __tablename__ = "auth_revoked"
    id: str = Field(primary_key=True, max_length=64)
    revoked_at: datetime = Field(index=True)
    expires_at: datetime


class PendingAuthorization(SQLModel, table=True):
    """An authorization request between the authorize endpoint and the consent decision."""

    __tablename__ = "auth_pending"
    id_hash: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(max_length=64)
    client_id: str = Field(max_length=64)
    params: str = Field(sa_column=sa.Column(sa.Text, nullable=False))  # JSON
    user_id: int | None = None
    browser_hash: str | None = Field(default=None, max_length=64)
    expires_at: datetime


class AuthAuditEvent(SQLModel, table=True):
    """Every AuditEvent (authentication events and FHIR interactions) as FHIR JSON, append-only.

    The columns beside the document are what AuditEvent search filters on.
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_recorded", "tenant_id", "recorded"),
        sa.Index("ix_audit_entity", "tenant_id", "entity"),
        sa.Index("ix_audit_patient", "tenant_id", "patient"),
    )
    pk: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    tenant_id: str | None = Field(default=None, max_length=64)
    recorded: datetime
    content: str = Field(sa_column=sa.Column(JSONDocument(), nullable=False))
    action: str | None = Field(default=None, max_length=1)
    outcome: str | None = Field(default=None, max_length=2)
    entity: str | None = Field(default=None, max_length=200)
    patient: str | None = Field(default=None, max_length=64)
    agent: str | None = Field(default=None, max_length=200)


class PracticeGrant(SQLModel, table=True):
    """A user's access to a practice (tenant) other than their own: a billing company's staff
    work for several practices. ``role`` is the user's role there (never ``admin``)."""

    __tablename__ = "auth_practice_grant"
    __table_args__ = (sa.UniqueConstraint("user_id", "tenant_id", name="uq_practice_grant"),)
    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True, autoincrement=True))
    user_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("auth_user.id", ondelete="CASCADE"),
                                             nullable=False, index=True))
    tenant_id: str = Field(foreign_key="tenant.id", max_length=64)
    role: str = Field(max_length=32)
    created_at: datetime


T = {
    name: model.__table__  # type: ignore[attr-defined]
    for name, model in {
        "client": AuthClient, "user": AuthUser, "key": SigningKey, "jti": AssertionJti,
        "code": AuthorizationCode, "refresh": RefreshToken, "launch": LaunchContext,
        "initial": InitialAccessToken, "revoked": RevokedToken, "pending": PendingAuthorization,
        "audit": AuthAuditEvent, "practice_grant": PracticeGrant,
    }.items()
}
