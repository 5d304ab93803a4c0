"""The FHIR app as the FHIR tests run it in a process of its own under uvicorn: the production
``create_app`` with the tests' header authenticator (tenant and scopes from headers), no
embedded worker, and the logging ``therabridge serve`` sets up, so what it logs is what a
deployment would.

    THERABRIDGE_DATABASE_URL=... uvicorn tests.app.fhir.live_app:create --factory
"""
from __future__ import annotations

import logging

from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.conftest import tenant_from_header


def create() -> FastAPI:
    settings = Settings(embedded_worker=False)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return create_app(settings, authenticate=tenant_from_header)
