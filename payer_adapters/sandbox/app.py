"""``create_sandbox_app(config)``: the sandbox payer as one FastAPI app.

Besides the FHIR (``fhir_api.py``) and CHC v3 (``chc_api.py``) surfaces it offers:

* ``GET /sandbox/ledger`` — what the payer received: ``claim_count``,
  ``by_patient_control_number``, ``by_member``, ``tokens_issued`` (assert "exactly once");
* ``POST /sandbox/mailbox/process`` (optional ``?now=ISO``) — answer the mailbox's inbox now;
* ``POST /sandbox/mailbox/redeliver?name=835_<key>.x12`` — send an answer again, byte for byte;
* ``POST /sandbox/appeals/mail`` (optional ``?now=ISO``) — an appeal package a biller mailed or
  uploaded (a Bundle: the letter's DocumentReference and its enclosures) arrives; the answer is an
  835 in the mailbox (``appeals.py``);
* ``POST /sandbox/reports/redeliver?name=<report>`` — list a CHC report again under a new name
  (a new transaction id, the same payment);
* ``POST /sandbox/faults`` / ``DELETE /sandbox/faults`` — fault injection (``faults.py``);
* a background mailbox loop every ``config.poll_interval`` s when ``config.mailbox`` is set and
  ``config.poll_interval > 0``.

Time: ``now`` defaults to the wall clock (UTC); tests pass ``now=`` for deterministic dates.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from payer_adapters.sandbox import chc_api, fhir_api
from payer_adapters.sandbox.config import SandboxConfig, load_config
from payer_adapters.sandbox.engine import Engine
from payer_adapters.sandbox.faults import FaultMiddleware, FaultTable
from payer_adapters.sandbox.mailbox import Mailbox
from payer_adapters.sandbox.x12_out import Counter

log = logging.getLogger("therabridge.sandbox")


class SandboxState:
    def __init__(self, config: SandboxConfig, now: Callable[[], datetime], require_auth: bool) -> None:
        self.config = config
        self.engine = Engine(config)
        self.now = now
        self.require_auth = require_auth
        self.faults = FaultTable()
        self.fhir = fhir_api.FhirState()
        self.chc = chc_api.ChcState()
        self.counter = Counter(700001)
        self.mailbox = Mailbox(config.mailbox, self.engine, use_pyx12=config.pyx12) if config.mailbox else None


def create_sandbox_app(config: SandboxConfig | None = None, *, now: Callable[[], datetime] | None = None,
                       require_auth: bool = True) -> FastAPI:
    """The sandbox payer. ``config`` defaults to the packaged data file with no mailbox."""
    config = config or load_config()
    state = SandboxState(config, now or (lambda: datetime.now(timezone.utc)), require_auth)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        task = None
        if state.mailbox is not None and config.poll_interval > 0:
            task = asyncio.create_task(_poll(state))
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="TheraBridge sandbox payer", lifespan=lifespan)
    app.state.sandbox = state
    app.include_router(fhir_api.router(state))
    app.include_router(chc_api.router(state))

    @app.get("/sandbox/ledger")
    async def ledger() -> dict[str, Any]:
        with state.engine.ledger.lock:
            out = state.engine.ledger.summary()
        out["tokens_issued"] = state.fhir.tokens_issued
        out["faults_fired"] = [list(f) for f in state.faults.fired]
        return out

    @app.post("/sandbox/mailbox/process")
    async def process(now: str | None = None) -> JSONResponse:
        if state.mailbox is None:
            return JSONResponse({"error": "no mailbox configured"}, status_code=404)
        when = datetime.fromisoformat(now) if now else state.now()
        written = await asyncio.to_thread(state.mailbox.process, when)
        return JSONResponse({"written": written})

    @app.post("/sandbox/mailbox/redeliver")
    async def redeliver(name: str) -> JSONResponse:
        if state.mailbox is None:
            return JSONResponse({"error": "no mailbox configured"}, status_code=404)
        try:
            return JSONResponse({"written": state.mailbox.redeliver(name)})
        except FileNotFoundError:
            return JSONResponse({"error": "no such answer"}, status_code=404)

    @app.post("/sandbox/appeals/mail")
    async def mailed_appeal(request: Request, now: str | None = None) -> JSONResponse:
        if state.mailbox is None:
            return JSONResponse({"error": "no mailbox configured"}, status_code=404)
        when = datetime.fromisoformat(now) if now else state.now()
        try:
            written = await asyncio.to_thread(state.mailbox.appeal, await request.json(), when)
        except LookupError as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse({"written": written})

    @app.post("/sandbox/reports/redeliver")
    async def redeliver_report(name: str) -> JSONResponse:
        try:
            return JSONResponse({"written": state.chc.redeliver(name)})
        except KeyError:
            return JSONResponse({"error": "no such report"}, status_code=404)

    @app.post("/sandbox/faults")
    async def set_fault(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            state.faults.set(body["path"], str(body["mode"]), int(body.get("count", 1)), float(body.get("seconds", 0)))
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"ok": True})

    @app.delete("/sandbox/faults")
    async def clear_faults() -> JSONResponse:
        state.faults.faults.clear()
        return JSONResponse({"ok": True})

    app.add_middleware(FaultMiddleware, table=state.faults)
    return app


async def _poll(state: SandboxState) -> None:
    while True:
        try:
            await asyncio.to_thread(state.mailbox.process, state.now())  # type: ignore[union-attr]
        except Exception:  # keep serving HTTP; the file stays in inbox/ for the next round
            log.exception("sandbox mailbox round failed")
        await asyncio.sleep(state.config.poll_interval)
