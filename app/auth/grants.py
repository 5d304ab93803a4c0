"""The token endpoint's three grants (RFC 6749 §4.1.3, §4.4, §6; SAL-LAUNCH; SAL-BS).

Each grant takes the authenticated client and the form, and returns the token response body
or raises an authlib ``OAuth2Error`` (rendered by ``oauth_routes`` as RFC 6749 §5.2 JSON).
"""
from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, Callable

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from sqlalchemy.engine import Engine

from app.auth import keys, practices, tokens
from app.auth.clients import require_form_value
from app.auth.crypto import as_aware, digest, new_secret, same, utcnow
from app.auth.models import ASYMMETRIC_KINDS, T
from app.auth.scopes import ScopeSet, role_ceiling
from app.db import write_connection
from app.settings import Settings

_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
REFRESH_SCOPES = ("offline_access", "online_access")
STYLE_PATH = "/auth/smart-style.json"


def client_credentials(engine: Engine, settings: Settings, client: Any, form: dict[str, str]) -> dict[str, Any]:
    """SMART Backend Services: ``system/`` scopes within the client's registration, no refresh."""
    if client.kind not in ASYMMETRIC_KINDS:
        raise UnauthorizedClientError(description="client_credentials needs a private_key_jwt client.")
    requested = ScopeSet.parse(require_form_value(form, "scope"))
    system_only = ScopeSet(tuple(s for s in requested.resources if s.context == "system"),
                           requested.other & {"__admin"})
    granted = system_only.within(ScopeSet.parse(client.scope))
    if not granted:
        raise InvalidScopeError(description="None of the requested scopes is allowed for this client.")
    grant = tokens.Grant(tenant=client.tenant_id, client_id=client.client_id, scope=str(granted),
                         grant_id=new_secret(16), subject=client.client_id)
    lifetime = settings.backend_token_lifetime
    return {"access_token": tokens.mint_access_token(engine, settings, grant, lifetime),
            "token_type": "bearer", "expires_in": lifetime, "scope": grant.scope}


def authorization_code(engine: Engine, settings: Settings, client: Any, form: dict[str, str]) -> dict[str, Any]:
    """Exchange a code: single use, bound to client and redirect_uri, PKCE S256 (RFC 7636 §4.6).

    A second use of a code revokes everything the first use issued (RFC 6749 §4.1.2)."""
    keys.signing_key(engine)  # create the first key outside the write transaction below
    code = require_form_value(form, "code")
    redirect_uri = require_form_value(form, "redirect_uri")
    verifier = form.get("code_verifier") or ""
    table = T["code"]
    with write_connection(engine) as conn, conn.begin():
        row = conn.execute(sa.select(table).where(table.c.code_hash == digest(code))).first()
        if row is None or row.client_id != client.client_id:
            raise InvalidGrantError(description="Unknown authorization code.")
        failure = None
        if row.used_at is not None:
            tokens.revoke_grant(engine, settings, conn, row.grant_id)
            failure = "Authorization code was already used."
        elif conn.execute(sa.update(table).where(table.c.code_hash == row.code_hash, table.c.used_at.is_(None))
                          .values(used_at=utcnow())).rowcount != 1:
            failure = "Authorization code was already used."
        elif as_aware(row.expires_at) <= utcnow():
            failure = "Authorization code expired."
        elif not same(row.redirect_uri, redirect_uri):
            failure = "redirect_uri does not match the authorization request."
        elif not _VERIFIER.match(verifier) or not same(create_s256_code_challenge(verifier), row.code_challenge):
            failure = "code_verifier does not match the code_challenge."
        if failure is None:
            context = json.loads(row.context)
            grant = tokens.Grant(tenant=row.tenant_id, client_id=row.client_id, scope=row.scope,
                                 grant_id=row.grant_id, subject=context.get("sub") or client.client_id,
                                 user_id=row.user_id, context=context)
            try:
                _switch_practice(conn, settings, grant, None)  # the practice may have been withdrawn since
            except InvalidGrantError as err:
                failure = err.description
            else:
                return _app_token_response(engine, settings, conn, grant)
    # Committed: the code is spent (or its grant revoked) even though this request fails.
    raise InvalidGrantError(description=failure)


def refresh_token(engine: Engine, settings: Settings, client: Any, form: dict[str, str]) -> dict[str, Any]:
    """Refresh (RFC 6749 §6): bound to the client, scope ⊆ original, rotated on every use.

    Presenting an already-rotated token revokes the whole grant: one of the two holders is
    not the client. With our extension parameter ``practice`` a person who works for several
    practices switches the grant to another of them (:func:`_switch_practice`)."""
    keys.signing_key(engine)  # create the first key outside the write transaction below
    secret = require_form_value(form, "refresh_token")
    requested = ScopeSet.parse(form["scope"]) if form.get("scope") else None
    table = T["refresh"]
    with write_connection(engine) as conn, conn.begin():
        row = tokens.find_refresh_token(conn, secret)
        if row is None or row.client_id != client.client_id or row.revoked:
            raise InvalidGrantError(description="Unknown or revoked refresh token.")
        if as_aware(row.expires_at) <= utcnow():
            raise InvalidGrantError(description="Refresh token expired.")
        context = json.loads(row.context)
        grant = tokens.Grant(tenant=row.tenant_id, client_id=row.client_id, scope=row.scope,
                             grant_id=row.grant_id, subject=context.get("sub") or client.client_id,
                             user_id=row.user_id, context=context)
        grant = _switch_practice(conn, settings, grant, form.get("practice"))
        if requested is not None and (requested.ignored or not ScopeSet.parse(grant.scope).covers(requested)):
            raise InvalidScopeError(description="Requested scope exceeds the original grant.")
        new_refresh = tokens.issue_refresh_token(conn, settings, grant)
        rotated = conn.execute(sa.update(table).where(table.c.token_hash == row.token_hash,
                                                      table.c.rotated_to.is_(None))
                               .values(rotated_to=digest(new_refresh))).rowcount
        if rotated == 1:
            issued = dataclasses.replace(grant, scope=str(requested) if requested is not None else grant.scope)
            body = _app_token_response(engine, settings, conn, issued, refresh=False)
            body["refresh_token"] = new_refresh
            return body
        # Reuse of a rotated token: keep only the revocation (the new refresh row is revoked with it).
        tokens.revoke_grant(engine, settings, conn, row.grant_id)
    raise InvalidGrantError(description="Refresh token was already used.")


def _switch_practice(conn: Any, settings: Settings, grant: tokens.Grant, practice: str | None) -> tokens.Grant:
    """The grant confined to ``practice`` (default: the one it has), checked against the
    user's current practices, so a withdrawn practice stops refreshing.

    The new scope is what the user consented to, within the ceiling of their role in that
    practice; ``fhirUser`` applies only in their own practice. Grants with a patient context
    belong to that patient's practice and do not switch."""
    if grant.user_id is None:
        if practice and practice != grant.tenant:
            raise InvalidRequestError(description="Only a person's grant can switch practice.")
        return grant
    user = conn.execute(sa.select(T["user"]).where(T["user"].c.id == grant.user_id)).first()
    target = practice or grant.tenant
    chosen = practices.practice_for(conn, user, target) if user is not None else None
    if chosen is None:
        if target == grant.tenant:
            raise InvalidGrantError(description="The user may no longer access this practice.")
        raise InvalidRequestError(description="practice is not one this user may access.")
    if target == grant.tenant:
        return grant
    if grant.context.get("patient") or grant.context.get("encounter"):
        raise InvalidRequestError(description="A grant with a patient or encounter context cannot switch practice.")
    consented = ScopeSet.parse(grant.context.get("consented") or grant.scope)
    scope = consented.within(role_ceiling(chosen.role))
    if not scope.resources:
        raise InvalidScopeError(description="The user's role in that practice allows none of the granted scopes.")
    context = {k: v for k, v in grant.context.items() if k != "fhirUser"}
    if chosen.home and user.fhir_user:
        context["fhirUser"] = f"{settings.fhir_base}/{user.fhir_user}"
    return dataclasses.replace(grant, tenant=chosen.id, scope=str(scope), context=context)


def _app_token_response(engine: Engine, settings: Settings, conn: Any, grant: tokens.Grant,
                        refresh: bool = True) -> dict[str, Any]:
    scopes = ScopeSet.parse(grant.scope)
    lifetime = settings.app_token_lifetime
    body: dict[str, Any] = {
        "access_token": tokens.mint_access_token(engine, settings, grant, lifetime),
        "token_type": "Bearer", "expires_in": lifetime, "scope": grant.scope,
        "need_patient_banner": bool(grant.context.get("need_patient_banner", True)),
        "smart_style_url": settings.public_url.rstrip("/") + STYLE_PATH,
    }
    for name in ("patient", "encounter"):
        if grant.context.get(name):
            body[name] = grant.context[name]
    if scopes.has("openid") and (scopes.has("fhirUser") or scopes.has("profile")):
        body["id_token"] = tokens.mint_id_token(engine, settings, grant, nonce=grant.context.get("nonce"))
    if refresh and any(scopes.has(s) for s in REFRESH_SCOPES):
        body["refresh_token"] = tokens.issue_refresh_token(conn, settings, grant)
    if grant.user_id is not None:
        user = conn.execute(sa.select(T["user"]).where(T["user"].c.id == grant.user_id)).first()
        if user is not None:
            body["practice"] = grant.tenant
            body["practices"] = [{"id": p.id, "name": p.name, "role": p.role}
                                 for p in practices.practices_of(conn, user)]
    return body


GRANTS: dict[str, Callable[[Engine, Settings, Any, dict[str, str]], dict[str, Any]]] = {
    "client_credentials": client_credentials,
    "authorization_code": authorization_code,
    "refresh_token": refresh_token,
}


def grant_for(form: dict[str, str]) -> Callable[[Engine, Settings, Any, dict[str, str]], dict[str, Any]]:
    """The handler for the request's ``grant_type`` (checked before client authentication)."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequestError(description="Missing parameter: grant_type.")
    handler = GRANTS.get(grant_type)
    if handler is None:
        raise UnsupportedGrantTypeError(grant_type)
    return handler
