"""Application factory: the FastAPI app with the FHIR API, health checks and error handling."""
from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__, heap
from app.audit import OUTCOME_MINOR, OUTCOME_SERIOUS, AuditLog, interaction_row
from app.bootstrap import build_store
from app.db import make_engine
from app.fhir.errors import FhirError, issue, outcome
from app.fhir.http import fhir_response
from app.fhir.registry import registry
from app.ids import unique_hex
from app.log_safety import describe_kind, where
from app.rate_limit import RateLimiter
from app.security import AccessContext
from app.services import Authenticator, Services
from app.settings import Settings, get_settings

log = logging.getLogger("therabridge")

HTTP_CODES = {404: "not-found", 405: "not-supported", 406: "not-supported", 413: "too-long", 415: "not-supported",
              429: "throttled"}


# A request id a client sends is kept when it is a plain token (it is logged: no line breaks).
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")
ErrorResponder = Callable[[Request, Exception], Awaitable[Response]]


class EdgeMiddleware:
    """Request ids, ``[type]/`` == ``[type]`` (R4 http.html §3.1.0.1), a PHI-free access log and
    the last word on unexpected errors.

    The log line has method, path without the query string (queries carry names and
    identifiers), status and duration. An exception no handler took is logged here by its kind,
    request id and code location (:mod:`app.log_safety`: a database error's text holds the SQL
    parameters, i.e. PHI) and answered by ``on_error``; it is not raised further, because the
    ASGI server would log it again with its full text.
    """

    def __init__(self, app: ASGIApp, on_error: ErrorResponder | None = None) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.endswith("/") and path.startswith("/fhir/"):
            scope = dict(scope, path=path.rstrip("/"), raw_path=path.rstrip("/").encode())
        request_id = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                request_id = value if _REQUEST_ID.match(value) else None
                break
        if request_id is None:
            request_id = unique_hex().encode()
        scope.setdefault("state", {})  # shared with the routes' Request.state (the access context)
        started = time.perf_counter()
        status_holder = [0]

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error("unhandled %s in request %s (%s %s) at %s", describe_kind(exc), request_id.decode(),
                      scope["method"], scope["path"], where(exc))
            if status_holder[0] or self.on_error is None:
                return  # the response had begun: the connection is cut short, which the client sees
            response = await self.on_error(Request(scope, receive), exc)
            await response(scope, receive, send_with_id)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %s %.1fms", scope["method"], scope["path"], status_holder[0],
                         (time.perf_counter() - started) * 1000)


def create_app(settings: Settings | None = None, *, authenticate: Authenticator | None = None) -> FastAPI:
    """The ASGI app. Requests are authenticated with SMART bearer tokens; ``authenticate`` lets
    tests and benchmarks that study other layers supply their own (no setting turns it off)."""
    settings = settings or get_settings()
    engine = make_engine(settings.database_url)
    store = build_store(settings, engine)
    from app.auth.bearer import authenticator
    from app.auth.capability import smart_security

    check_token = authenticate or authenticator(engine, settings)

    limiter = RateLimiter(settings.rate_limit, settings.rate_limit_burst) if settings.rate_limit > 0 else None

    async def authenticate_and_remember(request: Request) -> AccessContext:
        ctx = await check_token(request)
        request.state.ctx = ctx  # the error handler audits failures with it
        if limiter is not None:
            wait = limiter.retry_after((ctx.tenant_id, ctx.client_id or ctx.user or "anonymous"))
            if wait is not None:
                raise FhirError(429, "throttled", f"Too many requests from this client: at most "
                                f"{settings.rate_limit:g} per second; retry after {wait} s",
                                headers={"Retry-After": str(wait)})
        return ctx

    services = Services(settings=settings, engine=engine, registry=registry(), store=store,
                        authenticate=authenticate_and_remember, audit=AuditLog(engine),
                        security=smart_security(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Everything loaded so far (modules, the FHIR models, tables) lives as long as the
        # process: tens of thousands of objects that each full garbage collection walked while
        # the event loop waited. Frozen, they are skipped: with 32 clients on PostgreSQL the
        # read p99 went from 20-40 ms to 11-15 ms and reads/s up by a sixth.
        heap.settle()
        worker = None
        if settings.embedded_worker and not store.postgres:
            from app.jobs import Worker

            worker = Worker(store)
            threading.Thread(target=worker.run_forever, name="therabridge-worker", daemon=True).start()
        yield
        if worker:
            worker.stop()
        services.audit.close()
        await store.aclose()

    app = FastAPI(title="TheraBridge", version=__version__, lifespan=lifespan,
                  description="FHIR R4 integration server for therapy billing.")
    app.state.services = services

    from app.auth.admin_routes import router as admin_router
    from app.auth.oauth_routes import discovery_router
    from app.auth.oauth_routes import router as oauth_router
    from app.audit_routes import router as audit_router
    from app.billing.operations import router as billing_router
    from app.claims.operations import router as claims_router
    from app.payers.admin_routes import router as admin_payers_router
    from app.payers.routes import router as payers_router
    from app.payers.worklist_routes import router as worklist_router
    from app.fhir.routes import router as fhir_router
    from app.measures.routes import router as measures_router

    # Route order is a hot-path decision: routes are tried in order, so the FHIR reads by id
    # come right after the few AuditEvent routes that must win over them. FHIR path segments
    # are typed (resource type, id), so discovery under /fhir/.well-known never collides.
    app.include_router(audit_router)
    app.include_router(measures_router)  # Measures are served from their definitions, not the store
    app.include_router(fhir_router)
    app.include_router(discovery_router)
    app.include_router(claims_router)
    app.include_router(payers_router)
    app.include_router(worklist_router)
    app.include_router(billing_router)
    app.include_router(oauth_router)
    app.include_router(admin_router)
    app.include_router(admin_payers_router)
    from app.web.routes import router as web_router

    app.include_router(web_router)  # the practice web app at /app/

    @app.get("/healthz", tags=["Operations"], summary="Process is up")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["Operations"], summary="Database is reachable")
    async def readyz() -> JSONResponse:
        try:
            store.ping()
        except Exception:
            log.warning("readiness check: database unreachable")
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, exc: FhirError) -> Response:
        audit_failure(services, request, exc.status, exc.issues[0].get("diagnostics"))
        return fhir_response(exc.outcome, exc.status, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        issues = [issue("invalid", f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}") for e in exc.errors()[:10]]
        return fhir_response(outcome(issues), 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "processing")
        text = {404: f"No endpoint at {request.url.path}", 405: f"{request.method} is not allowed on {request.url.path}"}
        return fhir_response(outcome([issue(code, text.get(exc.status_code, str(exc.detail)))]), exc.status_code,
                             dict(exc.headers or {}))

    async def unexpected(request: Request, exc: Exception) -> Response:
        """Any other exception (logged by EdgeMiddleware): a 500 OperationOutcome, audited."""
        audit_failure(services, request, 500, "internal error")
        return fhir_response(outcome([issue("exception", "Internal server error; the error was logged with "
                                            "the request id in X-Request-Id")]), 500)

    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
                       expose_headers=["Location", "ETag", "Last-Modified", "Content-Location", "X-Request-Id",
                                       "Retry-After"])
    app.add_middleware(EdgeMiddleware, on_error=unexpected)
    from app.openapi_doc import install as describe_openapi

    describe_openapi(app)  # /openapi.json: the FHIR API per resource type, for generic clients
    return app



FAILED_SUBTYPE = {"GET": "read", "HEAD": "read", "POST": "create", "PUT": "update", "DELETE": "delete"}


def audit_failure(services: Services, request: Request, status: int, detail: str | None) -> None:
    """Refused or failed FHIR interactions are audited too (outcome 4 or 8)."""
    path = request.url.path
    if not path.startswith("/fhir") or "/.well-known/" in path or path == "/fhir/metadata":
        return
    ctx = getattr(request.state, "ctx", None)
    entity = path[len("/fhir/"):] or None
    if entity is None and request.method == "POST":
        subtype = "transaction"
    elif "$" in path:
        subtype = "operation"
    elif path.endswith("/_search") or (request.method == "GET" and path.count("/") == 2):
        subtype = "search-type"
    else:
        subtype = FAILED_SUBTYPE.get(request.method, "operation")
    services.audit.enqueue(interaction_row(
        ctx, ctx.tenant_id if ctx else None, subtype,
        outcome=OUTCOME_SERIOUS if status >= 500 else OUTCOME_MINOR, entity=entity[:200] if entity else None,
        source=request.client.host if request.client else None, detail=f"{status}: {detail or ''}"))


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document a server serves (``therabridge openapi``): built on an in-memory
    database, since it depends on the code, not on data."""
    return create_app(Settings(database_url="sqlite:///:memory:")).openapi()
