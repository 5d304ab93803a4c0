"""The app the end-to-end tests run under uvicorn: ``app.main.create_app`` with SMART
authentication, the security element in ``/metadata`` and the auth routers in front of the
FHIR routes (so ``/fhir/.well-known/…`` is not taken for a resource type).

    uvicorn tests.auth.live_app:create --factory
"""
from __future__ import annotations

from fastapi import FastAPI

from app.auth import bearer
from app.auth.admin_routes import router as admin_router
from app.auth.capability import smart_security
from app.auth.oauth_routes import discovery_router, router as oauth_router
from app.db import make_engine
from app.main import create_app
from app.migrations import upgrade
from app.settings import Settings


def create() -> FastAPI:
    settings = Settings()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    app = create_app(settings, authenticate=bearer.authenticator(engine, settings))
    app.state.services.security = smart_security(settings)
    fhir_routes = list(app.router.routes)
    app.router.routes.clear()
    app.include_router(discovery_router)
    app.router.routes.extend(fhir_routes)
    app.include_router(oauth_router)
    app.include_router(admin_router)
    return app
