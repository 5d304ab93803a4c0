"""HTTP edge of the authorization server: a FastAPI router (the thin Starlette integration
authlib lacks). Handlers parse the request, call the modules that do the work in a worker
thread (they use the database), and turn authlib ``OAuth2Error``s into RFC 6749 §5.2 JSON.

The app must set ``app.state.engine`` (or ``app.state.services.engine``) and may set
``app.state.settings`` (or ``app.state.services.settings``).

Every token-endpoint response, errors included, carries ``Cache-Control: no-store`` and
``Pragma: no-cache`` (SAL-LAUNCH step 5); discovery, JWKS and token responses allow any
origin (SAL-LAUNCH "Considerations for CORS"; bearer tokens, not cookies, protect them).
"""
from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from app.auth import audit, authorize, clients, discovery, keys, pages, tokens
from app.auth.admin import AdminError, register_client
from app.auth.crypto import as_aware, digest, same, utcnow
from app.auth.grants import grant_for
from app.auth.models import JWKS, JWKS_URI, PUBLIC, SECRET, T
from app.auth.users import check_login, get_user
from app.db import write_connection
from app.settings import Settings

log = logging.getLogger("therabridge.auth")
# Include ``discovery_router`` before the FHIR routes (``/fhir/.well-known/…`` would otherwise
# match ``/fhir/{type}/{id}``) and ``router`` anywhere, preferably after them: every route placed
# in front of the FHIR routes costs each FHIR request a path match.
discovery_router = APIRouter(tags=["authorization"])
router = APIRouter(tags=["authorization"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
ANY_ORIGIN = {"Access-Control-Allow-Origin": "*"}
PREFLIGHT = {**ANY_ORIGIN, "Access-Control-Allow-Methods": "POST, OPTIONS",
             "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600"}
PAGE_HEADERS = {**NO_STORE, "X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                "Referrer-Policy": "no-referrer"}
FORM_TYPE = "application/x-www-form-urlencoded"


def engine_of(request: Request) -> Engine:
    """The app's engine: ``app.state.engine``, else ``app.state.services.engine``."""
    state = request.app.state
    engine = getattr(state, "engine", None)
    return engine if engine is not None else state.services.engine


def settings_of(request: Request) -> Settings:
    """The app's settings: ``app.state.settings``, else ``app.state.services.settings``."""
    state = request.app.state
    settings = getattr(state, "settings", None)
    return settings if settings is not None else state.services.settings


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None


def oauth_error(err: OAuth2Error) -> JSONResponse:
    headers = {k: v for k, v in err.get_headers() if k.lower() != "content-type"}
    return JSONResponse(dict(err.get_body()), status_code=err.status_code,
                        headers={**headers, **NO_STORE, **ANY_ORIGIN})


def server_error() -> JSONResponse:
    return JSONResponse({"error": "server_error", "error_description": "Internal error."},
                        status_code=500, headers={**NO_STORE, **ANY_ORIGIN})


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; repeated parameters are refused (RFC 6749 §3.2)."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != FORM_TYPE:
        raise InvalidRequestError(description="Use application/x-www-form-urlencoded.")
    form = await request.form()
    out: dict[str, str] = {}
    for key, value in form.multi_items():
        if key in out:
            raise InvalidRequestError(description=f"Repeated parameter: {key}.")
        if not isinstance(value, str):
            raise InvalidRequestError(description="File uploads are not accepted.")
        out[key] = value
    return out


# -- discovery ------------------------------------------------------------------------------

@discovery_router.get("/fhir/.well-known/smart-configuration", include_in_schema=False)
def smart_configuration(request: Request) -> JSONResponse:
    return JSONResponse(discovery.smart_configuration(settings_of(request)), headers=ANY_ORIGIN)


@router.get("/.well-known/openid-configuration", include_in_schema=False)
@discovery_router.get("/fhir/.well-known/openid-configuration", include_in_schema=False)
def openid_configuration(request: Request) -> JSONResponse:
    return JSONResponse(discovery.openid_configuration(settings_of(request)), headers=ANY_ORIGIN)


@router.get("/auth/jwks")
def jwks(request: Request) -> JSONResponse:
    return JSONResponse(keys.jwks(engine_of(request)),
                        headers={**ANY_ORIGIN, "Cache-Control": "public, max-age=300"})


@router.get("/auth/smart-style.json", include_in_schema=False)
def smart_style() -> JSONResponse:
    """``smart_style_url`` target (SAL-LAUNCH, context-style); change the URL if this changes."""
    return JSONResponse({"color_background": "#f7f7f5", "color_error": "#a40000",
                         "color_highlight": "#2e6b5e", "color_modal_backdrop": "",
                         "color_success": "#2e7d32", "color_text": "#1f1f1f",
                         "dim_border_radius": "4px", "dim_font_size": "14px", "dim_spacing_size": "16px",
                         "font_family_body": "system-ui, sans-serif", "font_family_heading": "system-ui, sans-serif"},
                        headers=ANY_ORIGIN)


# -- token endpoint -------------------------------------------------------------------------

@router.options("/auth/token", include_in_schema=False)
@router.options("/auth/introspect", include_in_schema=False)
@router.options("/auth/revoke", include_in_schema=False)
def preflight() -> Response:
    return Response(status_code=204, headers=PREFLIGHT)


@router.post("/auth/token")
async def token(request: Request) -> JSONResponse:
    engine, settings = engine_of(request), settings_of(request)
    try:
        form = await read_form(request)
        body = await run_in_threadpool(_token, engine, settings, form,
                                       request.headers.get("authorization"), _source(request))
    except OAuth2Error as err:
        return oauth_error(err)
    except Exception as exc:  # never a stack trace to the client, nor parameters in the log
        log.error("token endpoint failed: %s", type(exc).__name__)
        return server_error()
    return JSONResponse(body, headers={**NO_STORE, **ANY_ORIGIN})


def _token(engine: Engine, settings: Settings, form: dict[str, str], authorization: str | None,
           source: str | None) -> dict[str, Any]:
    grant = grant_for(form)
    client = None
    try:
        client = clients.authenticate_client(engine, settings, form, authorization,
                                             [discovery.token_url(settings)])
        body = grant(engine, settings, client, form)
    except OAuth2Error as err:
        who = client or clients.claimed_client(engine, form, authorization)
        audit.record(engine, "token", success=False, tenant=who.tenant_id if who else None,
                     client_id=who.client_id if who else None, source=source,
                     detail=f"{form.get('grant_type')}: {err.error}")
        raise
    audit.record(engine, "token", success=True, tenant=client.tenant_id, client_id=client.client_id,
                 source=source, detail=form.get("grant_type"))
    practice = body.get("practice")
    if practice and practice != client.tenant_id:  # the practice's own trail shows who got in, and from where
        audit.record(engine, "token", success=True, tenant=practice, client_id=client.client_id, source=source,
                     detail=f"{form.get('grant_type')} for a user of {client.tenant_id}")
    return body


# -- introspection and revocation -----------------------------------------------------------

async def _form_call(request: Request, what: str, call: Any, *args: Any) -> Any:
    """Read the form and run ``call(engine, settings, form, authorization, *args)`` off the
    event loop; an OAuth error becomes its RFC 6749 answer, anything else a bare 500 (never a
    stack trace to the client, nor parameters in the log)."""
    engine, settings = engine_of(request), settings_of(request)
    try:
        form = await read_form(request)
        return await run_in_threadpool(call, engine, settings, form, request.headers.get("authorization"), *args)
    except OAuth2Error as err:
        return oauth_error(err)
    except Exception as exc:
        log.error("%s failed: %s", what, type(exc).__name__)
        return server_error()


@router.post("/auth/introspect")
async def introspect(request: Request) -> Response:
    body = await _form_call(request, "introspection", _introspect)
    return body if isinstance(body, Response) else JSONResponse(body, headers={**NO_STORE, **ANY_ORIGIN})


def _caller(engine: Engine, settings: Settings, form: dict[str, str], authorization: str | None,
            endpoint: str) -> tuple[str, str | None, str | None]:
    """(tenant, client_id restriction, authenticated client) of whoever calls introspection: a
    bearer token of the tenant, or an authenticated client (public clients see only their own
    tokens; any client also sees its own tokens for other practices of a multi-practice user)."""
    if authorization and authorization.lower().startswith("bearer "):
        try:
            claims = tokens.verify_access_token(engine, settings, authorization[7:].strip())
        except tokens.InvalidToken:
            raise InvalidClientError(description="The bearer token is not valid.", status_code=401) from None
        return claims["tenant"], None, None
    audiences = [discovery.token_url(settings), discovery.endpoints(settings)[endpoint]]
    client = clients.authenticate_client(engine, settings, form, authorization, audiences)
    return client.tenant_id, client.client_id if client.kind == PUBLIC else None, client.client_id


def _introspect(engine: Engine, settings: Settings, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
    tenant, only_client, caller = _caller(engine, settings, form, authorization, "introspection_endpoint")
    token_value = clients.require_form_value(form, "token")
    result = tokens.introspect(engine, settings, token_value)
    own = caller is not None and result.get("client_id") == caller
    if result.get("active") and ((result.get("tenant") != tenant and not own)
                                 or (only_client and result.get("client_id") != only_client)):
        return {"active": False}
    return result


@router.post("/auth/revoke")
async def revoke(request: Request) -> Response:
    answer = await _form_call(request, "revocation", _revoke, _source(request))
    return answer if isinstance(answer, Response) else Response(status_code=200, headers={**NO_STORE, **ANY_ORIGIN})


def _revoke(engine: Engine, settings: Settings, form: dict[str, str], authorization: str | None,
            source: str | None) -> None:
    audiences = [discovery.token_url(settings), discovery.endpoints(settings)["revocation_endpoint"]]
    client = clients.authenticate_client(engine, settings, form, authorization, audiences)
    tokens.revoke(engine, settings, clients.require_form_value(form, "token"), client.client_id)
    audit.record(engine, "revoke", success=True, tenant=client.tenant_id, client_id=client.client_id,
                 source=source)


# -- authorization endpoint, login, consent --------------------------------------------------

@router.get("/auth/authorize", operation_id="authorize_get", summary="Authorization request (GET)")
@router.post("/auth/authorize", operation_id="authorize_post", summary="Authorization request (POST form)")
async def authorize_endpoint(request: Request) -> Response:
    engine, settings = engine_of(request), settings_of(request)
    if request.method == "POST":
        try:
            params = await read_form(request)
        except OAuth2Error as err:
            return _error_page(err.description or "Malformed request.")
    else:
        params = dict(request.query_params)
    try:
        request_id, client = await run_in_threadpool(authorize.start, engine, settings, params)
    except authorize.ShowError as err:
        return _error_page(str(err))
    except authorize.RedirectError as err:
        return RedirectResponse(err.location(), status_code=302, headers=NO_STORE)
    return HTMLResponse(pages.login_page(request_id=request_id, client_name=client.name), headers=PAGE_HEADERS)


@router.post("/auth/login", include_in_schema=False)
async def login(request: Request) -> Response:
    engine, settings = engine_of(request), settings_of(request)
    form = await request.form()
    request_id = str(form.get("req") or "")
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    try:
        pending = await run_in_threadpool(authorize.load_pending, engine, request_id)
    except authorize.ShowError as err:
        return _error_page(str(err))
    result = await run_in_threadpool(check_login, engine, settings, pending.row.tenant_id, username, password)
    await run_in_threadpool(lambda: audit.record(
        engine, "login", success=result.user is not None, tenant=pending.row.tenant_id,
        client_id=pending.client.client_id, user=username if result.user is not None else None,
        source=_source(request), detail="locked" if result.locked else None))
    if result.user is None:
        message = ("Too many failed sign-ins; try again later." if result.locked
                   else "Unknown username or wrong password.")
        return HTMLResponse(pages.login_page(request_id=request_id, client_name=pending.client.name, error=message),
                            status_code=429 if result.locked else 401, headers=PAGE_HEADERS)
    browser = await run_in_threadpool(authorize.attach_user, engine, pending, result.user.id)
    try:
        choices = await run_in_threadpool(authorize.choose_practice, engine, pending, result.user)
    except authorize.RedirectError as err:
        return RedirectResponse(err.location(), status_code=302, headers=NO_STORE)
    if choices is not None:
        response: Response = HTMLResponse(pages.practice_page(
            request_id=request_id, client_name=pending.client.name, username=result.user.username,
            practices=[(p.id, p.name if p.name == p.id else f"{p.name} ({p.id})") for p in choices]),
            headers=PAGE_HEADERS)
    else:
        response = await _consent_response(engine, pending, result.user)
    response.set_cookie(authorize.BROWSER_COOKIE, browser, httponly=True, samesite="lax", path="/auth",
                        secure=settings.public_url.startswith("https:"), max_age=authorize.PENDING_LIFETIME)
    return response


async def _consent_response(engine: Engine, pending: authorize.Pending, user: Any,
                            error: str | None = None) -> HTMLResponse:
    offered = authorize.offered_scopes(pending, user)
    patients = None
    practice = authorize.practice_of(pending)
    if authorize.needs_patient_choice(pending, user, offered):
        patients = await run_in_threadpool(authorize.patient_choices, engine, practice)
    html = pages.consent_page(
        request_id=pending.request_id, client_name=pending.client.name, username=user.username,
        scopes=str(offered).split(), patients=patients,
        offline=offered.has("offline_access") or offered.has("online_access"), error=error,
        practice=practice if practice != user.tenant_id else None)
    return HTMLResponse(html, status_code=400 if error else 200, headers=PAGE_HEADERS)


async def _signed_in(request: Request, engine: Engine, form: Any) -> tuple[authorize.Pending, Any]:
    """The pending request and its user, accepted only from the browser that signed in."""
    pending = await run_in_threadpool(authorize.load_pending, engine, str(form.get("req") or ""))
    browser = request.cookies.get(authorize.BROWSER_COOKIE, "")
    if pending.row.user_id is None or not pending.row.browser_hash or not same(digest(browser), pending.row.browser_hash):
        raise authorize.ShowError("Sign in first, in this browser.")
    return pending, await run_in_threadpool(get_user, engine, pending.row.user_id)


@router.post("/auth/practice", include_in_schema=False)
async def practice(request: Request) -> Response:
    """The practice chooser's form (``practice``): then the consent page."""
    engine = engine_of(request)
    form = await request.form()
    try:
        pending, user = await _signed_in(request, engine, form)
        await run_in_threadpool(authorize.choose_practice, engine, pending, user, str(form.get("practice") or "") or "\0")
    except authorize.ShowError as err:
        return _error_page(str(err))
    except authorize.RedirectError as err:
        await run_in_threadpool(lambda: audit.record(
            engine, "authorize", success=False, tenant=pending.row.tenant_id, client_id=pending.client.client_id,
            user=user.username, source=_source(request), detail="practice refused"))
        return RedirectResponse(err.location(), status_code=302, headers=NO_STORE)
    return await _consent_response(engine, pending, user)


@router.post("/auth/consent", include_in_schema=False)
async def consent(request: Request) -> Response:
    engine, settings = engine_of(request), settings_of(request)
    form = await request.form()
    try:
        pending, user = await _signed_in(request, engine, form)
    except authorize.ShowError as err:
        return _error_page(str(err))
    if not authorize.practice_settled(pending):
        return _error_page("Choose a practice first.")
    selected = [str(v) for v in form.getlist("scope")] if form.get("scopes_selected") else None
    approve = form.get("decision") == "approve"
    try:
        location = await run_in_threadpool(lambda: authorize.decide(
            engine, settings, pending, user, approve=approve, selected_scopes=selected,
            patient=str(form.get("patient") or "") or None))
    except ValueError as err:
        return await _consent_response(engine, pending, user, error=str(err))
    await run_in_threadpool(lambda: audit.record(
        engine, "authorize", success=approve, tenant=authorize.practice_of(pending), client_id=pending.client.client_id,
        user=user.username, source=_source(request), detail="approved" if approve else "denied"))
    response = RedirectResponse(location, status_code=302, headers=NO_STORE)
    response.delete_cookie(authorize.BROWSER_COOKIE, path="/auth")
    return response


def _error_page(message: str) -> HTMLResponse:
    return HTMLResponse(pages.error_page(message), status_code=400, headers=PAGE_HEADERS)


# -- dynamic registration (RFC 7591) ----------------------------------------------------------

AUTH_METHOD_KIND = {"none": PUBLIC, "client_secret_basic": SECRET, "private_key_jwt": None}


def _registration_error(error: str, description: str, status: int = 400,
                        headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={**NO_STORE, **(headers or {})})


@router.post("/auth/register", status_code=201)
async def register(request: Request) -> JSONResponse:
    engine = engine_of(request)
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return _registration_error("invalid_token", "An initial access token is required.", 401,
                                   {"WWW-Authenticate": 'Bearer realm="therabridge"'})
    try:
        metadata = await request.json()
    except ValueError:
        return _registration_error("invalid_client_metadata", "The body must be a JSON object.")
    if not isinstance(metadata, dict):
        return _registration_error("invalid_client_metadata", "The body must be a JSON object.")
    try:
        return await run_in_threadpool(_register, engine, header[7:].strip(), metadata, _source(request))
    except Exception as exc:  # never a stack trace to the client, nor parameters in the log
        log.error("registration failed: %s", type(exc).__name__)
        return server_error()


def _register(engine: Engine, initial_token: str, metadata: dict[str, Any], source: str | None) -> JSONResponse:
    table = T["initial"]
    token_hash = digest(initial_token)
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.token_hash == token_hash)).first()
    if row is None or row.used_at is not None or as_aware(row.expires_at) <= utcnow():
        return _registration_error("invalid_token", "The initial access token is invalid, used or expired.", 401,
                                   {"WWW-Authenticate": 'Bearer realm="therabridge", error="invalid_token"'})
    method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHOD_KIND:
        return _registration_error("invalid_client_metadata", "Unsupported token_endpoint_auth_method.")
    kind = AUTH_METHOD_KIND[method] or (JWKS_URI if metadata.get("jwks_uri") else JWKS)
    redirects = metadata.get("redirect_uris") or []
    if not isinstance(redirects, list) or not all(isinstance(u, str) for u in redirects):
        return _registration_error("invalid_redirect_uri", "redirect_uris must be a list of URLs.")
    try:
        created = register_client(
            engine, tenant=row.tenant_id, name=str(metadata.get("client_name") or "Unnamed client")[:200],
            scope=str(metadata.get("scope") or ""), kind=kind, jwks=metadata.get("jwks"),
            jwks_uri=metadata.get("jwks_uri"), redirect_uris=redirects, allow_admin=False)
    except AdminError as err:
        error = "invalid_redirect_uri" if "redirect" in str(err) else "invalid_client_metadata"
        return _registration_error(error, str(err))
    with write_connection(engine) as conn, conn.begin():
        consumed = conn.execute(sa.update(table).where(table.c.token_hash == token_hash, table.c.used_at.is_(None))
                                .values(used_at=utcnow())).rowcount
        if consumed != 1:
            conn.execute(sa.delete(T["client"]).where(T["client"].c.client_id == created["client_id"]))
    if consumed != 1:
        return _registration_error("invalid_token", "The initial access token was already used.", 401)
    audit.record(engine, "register", success=True, tenant=row.tenant_id, client_id=created["client_id"], source=source)
    client = clients.get_client(engine, created["client_id"])
    body: dict[str, Any] = {
        "client_id": client.client_id, "client_id_issued_at": int(as_aware(client.created_at).timestamp()),
        "client_name": client.name, "redirect_uris": clients.redirect_uris(client),
        "token_endpoint_auth_method": method, "scope": client.scope,
        "grant_types": ["client_credentials"] if kind in (JWKS, JWKS_URI) and not redirects
        else ["authorization_code", "refresh_token"] + (["client_credentials"] if kind in (JWKS, JWKS_URI) else []),
        "response_types": ["code"],
    }
    if "client_secret" in created:
        body["client_secret"] = created["client_secret"]
        body["client_secret_expires_at"] = 0
    if client.jwks_uri:
        body["jwks_uri"] = client.jwks_uri
    return JSONResponse(body, status_code=201, headers=NO_STORE)
