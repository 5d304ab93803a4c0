"""Admin API under ``/admin``: the CLI's operations over HTTP, for one tenant at a time.

Protection: a bearer access token carrying the ``__admin`` scope — granted only to users
whose role is ``admin`` (role ceiling) or to backend clients registered with ``__admin``.
The token's tenant is the tenant managed; creating tenants stays a CLI (operator) task.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.auth import admin, bearer, keys
from app.auth.oauth_routes import engine_of, settings_of
from app.auth.scopes import ADMIN_SCOPE, ScopeSet
from app.fhir.errors import FhirError
from app.security import AccessContext

router = APIRouter(prefix="/admin", tags=["admin"])


class ClientIn(BaseModel):
    name: str = Field(max_length=200)
    scope: str
    kind: str
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    redirect_uris: list[str] = []


class UserIn(BaseModel):
    username: str
    password: str
    role: str
    fhir_user: str | None = None


class LaunchIn(BaseModel):
    patient: str | None = None
    encounter: str | None = None


def require_admin(request: Request) -> AccessContext:
    ctx = bearer.authenticate(request, engine_of(request), settings_of(request))
    scopes = ctx.scopes
    if not isinstance(scopes, ScopeSet) or not scopes.has(ADMIN_SCOPE):
        raise bearer.insufficient_scope("The admin API needs the __admin scope.", ADMIN_SCOPE)
    return ctx


async def _run(request: Request, fn: Any, status: int = 201, **kwargs: Any) -> JSONResponse:
    try:
        ctx = require_admin(request)
        result = await run_in_threadpool(lambda: fn(engine_of(request), ctx.tenant_id, **kwargs))
    except FhirError as err:
        return JSONResponse(err.outcome, status_code=err.status, headers=err.headers)
    except admin.AdminError as err:
        return JSONResponse({"error": "invalid_request", "error_description": str(err)}, status_code=400)
    return JSONResponse(result, status_code=status, headers={"Cache-Control": "no-store"})


@router.post("/clients")
async def create_client(request: Request, body: ClientIn) -> JSONResponse:
    return await _run(request, lambda engine, tenant: admin.register_client(
        engine, tenant=tenant, name=body.name, scope=body.scope, kind=body.kind, jwks=body.jwks,
        jwks_uri=body.jwks_uri, redirect_uris=body.redirect_uris))


@router.post("/users")
async def create_user(request: Request, body: UserIn) -> JSONResponse:
    return await _run(request, lambda engine, tenant: admin.create_user(
        engine, tenant=tenant, username=body.username, password=body.password, role=body.role,
        fhir_user=body.fhir_user))


@router.post("/initial-tokens")
async def initial_token(request: Request) -> JSONResponse:
    return await _run(request, lambda engine, tenant: admin.issue_initial_token(engine, tenant))


@router.post("/launches")
async def launch(request: Request, body: LaunchIn) -> JSONResponse:
    return await _run(request, lambda engine, tenant: admin.create_launch(
        engine, tenant, patient=body.patient, encounter=body.encounter))


@router.post("/keys/rotate")
async def rotate_keys(request: Request) -> JSONResponse:
    settings = settings_of(request)
    return await _run(request, lambda engine, tenant: {"kid": keys.rotate(engine, settings)}, status=200)
