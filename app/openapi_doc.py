"""The served OpenAPI document; ``openapi/openapi.json`` is a copy kept in step by a test."""
from __future__ import annotations

from typing import Any

from app.settings import Settings


def openapi_document() -> dict[str, Any]:
    from app.main import create_app

    app = create_app(Settings(database_url="sqlite:///:memory:"))
    return app.openapi()
