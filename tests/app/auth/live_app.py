"""The app the end-to-end tests run under uvicorn: the production ``create_app`` (SMART
authentication, discovery and OAuth routes, the security element in ``/metadata``), on a
database migrated first.

    uvicorn tests.app.auth.live_app:create --factory
"""
from __future__ import annotations

from fastapi import FastAPI

from app.db import make_engine
from app.main import create_app
from app.migrations import upgrade
from app.settings import Settings


def create() -> FastAPI:
    settings = Settings()
    upgrade(make_engine(settings.database_url))
    return create_app(settings)
