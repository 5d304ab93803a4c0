"""``therabridge tenants|clients|users``: tenants, client registration, people.

All commands work on the database named by ``THERABRIDGE_DATABASE_URL`` (migrated first) and
print JSON. Secrets are printed once and stored hashed; passwords are read from standard input.
The server's modules are imported inside each command, so ``--help`` and the other commands
start without loading them.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

tenants = typer.Typer(no_args_is_help=True, help="Tenants (practices).")
clients = typer.Typer(no_args_is_help=True, help="OAuth clients: EHR systems and SMART apps.")
users = typer.Typer(no_args_is_help=True, help="People who sign in at the authorization endpoint.")


def _engine() -> Engine:
    from app import migrations
    from app.db import make_engine
    from app.settings import get_settings

    engine = make_engine(get_settings().database_url)
    migrations.upgrade(engine)
    return engine


def _print(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, indent=2))


def _fail(err: Exception) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code=2)


@tenants.command("create")
def tenants_create(slug: str, name: Optional[str] = typer.Option(None, "--name")) -> None:
    """Create a tenant."""
    from app.auth import admin as ops

    try:
        _print(ops.create_tenant(_engine(), slug, name))
    except ops.AdminError as err:
        _fail(err)


@clients.command("register")
def clients_register(
    tenant: str = typer.Option(..., "--tenant"),
    name: str = typer.Option(..., "--name"),
    scope: str = typer.Option(..., "--scope", help="The most this client may be granted."),
    jwks: Optional[Path] = typer.Option(None, "--jwks", exists=True, dir_okay=False, help="JWKS file (public keys)."),
    jwks_uri: Optional[str] = typer.Option(None, "--jwks-uri", help="URL of the client's JWKS."),
    public: bool = typer.Option(False, "--public", help="Public app (PKCE, no secret)."),
    secret: bool = typer.Option(False, "--secret", help="Confidential app with a client secret."),
    redirect_uri: list[str] = typer.Option([], "--redirect-uri", help="Repeat for several."),
) -> None:
    """Register a client; prints {"client_id", "client_secret"?}."""
    from app.auth import admin as ops
    from app.auth.models import JWKS, JWKS_URI, PUBLIC, SECRET

    chosen = [k for k, on in ((JWKS, jwks is not None), (JWKS_URI, jwks_uri is not None),
                               (PUBLIC, public), (SECRET, secret)) if on]
    if len(chosen) != 1:
        _fail(ValueError("give exactly one of --jwks, --jwks-uri, --public, --secret"))
    try:
        keyset = json.loads(jwks.read_text()) if jwks is not None else None
    except ValueError:
        _fail(ValueError("--jwks file is not JSON"))
    try:
        _print(ops.register_client(_engine(), tenant=tenant, name=name, scope=scope, kind=chosen[0],
                                   jwks=keyset, jwks_uri=jwks_uri, redirect_uris=list(redirect_uri)))
    except ops.AdminError as err:
        _fail(err)


@clients.command("initial-token")
def clients_initial_token(tenant: str = typer.Option(..., "--tenant")) -> None:
    """Issue a single-use initial access token for RFC 7591 dynamic registration."""
    from app.auth import admin as ops

    try:
        _print(ops.issue_initial_token(_engine(), tenant))
    except ops.AdminError as err:
        _fail(err)


@users.command("create")
def users_create(
    tenant: str = typer.Option(..., "--tenant"),
    username: str = typer.Option(..., "--username"),
    role: str = typer.Option(..., "--role", help="admin, biller, clinician or auditor"),
    fhir_user: Optional[str] = typer.Option(None, "--fhir-user", help="e.g. Practitioner/123"),
) -> None:
    """Create a user; the password is read from standard input."""
    from app.auth import admin as ops

    password = sys.stdin.readline().rstrip("\r\n")
    try:
        _print(ops.create_user(_engine(), tenant=tenant, username=username, password=password,
                               role=role, fhir_user=fhir_user))
    except ops.AdminError as err:
        _fail(err)


@users.command("grant")
def users_grant(
    tenant: str = typer.Option(..., "--tenant", help="The user's own practice."),
    username: str = typer.Option(..., "--username"),
    practice: str = typer.Option(..., "--practice", help="Another practice the user may work in."),
    role: Optional[str] = typer.Option(None, "--role", help="Role there (default: the user's role; never admin)."),
) -> None:
    """Let a user work in another practice (billing companies serving several practices)."""
    from app.auth import practices as ops

    try:
        _print(ops.grant_practice(_engine(), tenant=tenant, username=username, practice=practice, role=role))
    except ops.PracticeError as err:
        _fail(err)


@users.command("revoke")
def users_revoke(
    tenant: str = typer.Option(..., "--tenant"),
    username: str = typer.Option(..., "--username"),
    practice: str = typer.Option(..., "--practice"),
) -> None:
    """Withdraw a practice from a user and revoke the tokens they hold for it."""
    from app.auth import practices as ops
    from app.settings import get_settings

    try:
        _print(ops.revoke_practice(_engine(), get_settings(), tenant=tenant, username=username, practice=practice))
    except ops.PracticeError as err:
        _fail(err)


@users.command("practices")
def users_practices(
    tenant: str = typer.Option(..., "--tenant"),
    username: str = typer.Option(..., "--username"),
) -> None:
    """List the practices a user may work in, with their role in each."""
    from app.auth import practices as ops

    try:
        _print(ops.list_practices(_engine(), tenant=tenant, username=username))
    except ops.PracticeError as err:
        _fail(err)


def register(app: typer.Typer) -> None:
    app.add_typer(tenants, name="tenants")
    app.add_typer(clients, name="clients")
    app.add_typer(users, name="users")
