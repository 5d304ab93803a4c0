"""A biller's actions on a work item: ``Task/{id}/$assign``, ``$note`` and ``$close``
(``app.payers.worklists``). Include ``router`` in the app.

The caller must be able to read and update Tasks and see this one (another practice's Task is
404); the write is audited as the caller's. Parameters come from the query or a Parameters body.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.fhir.http import fhir_response
from app.fhir.operations import register_operations
from app.fhir.routes import operation_context, operation_params, require, store_for
from app.fhir.errors import FhirError
from app.fhir.store import Unit, Version
from app.payers import worklists

router = APIRouter(prefix="/fhir", tags=["Payers"])

register_operations(Path(__file__).parent / "data" / "worklist_operations.json")

KNOWN = {"assign": {"owner"}, "note": {"text"}, "close": {"status", "outcome", "reason"}}


async def _act(request: Request, task_id: str, name: str,
               act: Callable[[Unit, dict[str, str], Any], Version]) -> Response:
    svc, ctx = await operation_context(request)
    for interaction in ("r", "u"):
        require(ctx, interaction, "Task")
    params, _ = await operation_params(request, svc)
    unknown = sorted(set(params) - KNOWN[name] - {"_format"})
    if unknown:
        raise FhirError(400, "invalid", f"${name} takes {', '.join(sorted(KNOWN[name]))}; not {', '.join(unknown)}",
                        expression=[unknown[0]])
    ts = store_for(svc, ctx)

    def run() -> Version:
        with ts.unit() as unit:
            unit.read("Task", task_id)  # visible to the caller (404 otherwise)
            return act(unit, params, ctx)

    stored = await run_in_threadpool(run)
    return fhir_response(stored.content, 200, {"ETag": stored.etag})


@router.post("/Task/{task_id}/$assign", summary="Assign a work item to a practitioner")
async def assign(task_id: str, request: Request) -> Response:
    base = request.app.state.services.base

    def act(unit: Unit, params: dict[str, str], ctx: Any) -> Version:
        owner = params.get("owner") or ctx.fhir_user
        if not owner:
            raise FhirError(400, "required", "Name the owner (owner=Practitioner/id); the caller has no fhirUser",
                            expression=["owner"])
        return worklists.assign(unit, task_id, owner, base)

    return await _act(request, task_id, "assign", act)


@router.post("/Task/{task_id}/$note", summary="Add a note to a work item")
async def note(task_id: str, request: Request) -> Response:
    def act(unit: Unit, params: dict[str, str], ctx: Any) -> Version:
        return worklists.add_note(unit, task_id, params.get("text", ""), ctx.fhir_user or ctx.client_id or ctx.user)

    return await _act(request, task_id, "note", act)


@router.post("/Task/{task_id}/$close", summary="Close a work item")
async def close(task_id: str, request: Request) -> Response:
    def act(unit: Unit, params: dict[str, str], ctx: Any) -> Version:
        if not params.get("status"):
            raise FhirError(400, "required", "Give the closing status (completed or cancelled)", expression=["status"])
        return worklists.close(unit, task_id, params["status"], params.get("outcome"), params.get("reason"))

    return await _act(request, task_id, "close", act)
