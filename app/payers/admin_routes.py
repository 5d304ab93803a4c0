"""``/admin/payers``: the payer directory over HTTP for the token's tenant (``__admin`` scope,
checked by the same dependency as the rest of ``/admin``). Credentials go in, never out."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from app.auth.admin_routes import require_admin
from app.auth.oauth_routes import engine_of, settings_of
from app.fhir.errors import FhirError
from app import directory
from app.payers import calls
from app.directory.secrets import CredentialKeyError

router = APIRouter(prefix="/admin/payers", tags=["admin"])


class PayerIn(BaseModel):
    organization: str = Field(max_length=64)
    kind: str = Field(max_length=40)
    settings: dict[str, Any] = {}
    credentials: dict[str, Any] | None = None
    profile: str | None = None
    timely_filing_days: int | None = Field(default=None, ge=1)
    auto_submit: bool = False
    status_follow_up_days: int | None = Field(default=None, ge=1)


class CredentialsIn(BaseModel):
    credentials: dict[str, Any]


async def _run(request: Request, fn: Any, status: int = 200) -> JSONResponse:
    try:
        ctx = require_admin(request)
        result = await run_in_threadpool(fn, ctx.tenant_id)
    except FhirError as err:
        return JSONResponse(err.outcome, status_code=err.status, headers=err.headers)
    except (directory.DirectoryError, CredentialKeyError) as err:
        return JSONResponse({"error": "invalid_request", "error_description": str(err)}, status_code=400)
    return JSONResponse(result, status_code=status, headers={"Cache-Control": "no-store"})


@router.get("")
async def list_payers(request: Request) -> JSONResponse:
    engine = engine_of(request)
    return await _run(request, lambda tenant: {"payers": [
        {k: v for k, v in p.items() if k != "tenant"} for p in calls.listing(engine, tenant, datetime.now(timezone.utc))]})


@router.post("")
async def add_payer(request: Request, body: PayerIn) -> JSONResponse:
    store = request.app.state.services.store
    return await _run(request, lambda tenant: directory.add(
        store, settings_of(request), tenant, body.organization, body.kind, body.settings, body.credentials,
        profile=body.profile, timely_filing_days=body.timely_filing_days, auto_submit=body.auto_submit,
        status_follow_up_days=body.status_follow_up_days).public(),
        status=201)


@router.put("/{organization}/credentials")
async def rotate_credentials(organization: str, request: Request, body: CredentialsIn) -> JSONResponse:
    return await _run(request, lambda tenant: directory.rotate_credentials(
        engine_of(request), settings_of(request), tenant, organization, body.credentials).public())
