"""Alembic migrations; run with ``therabridge db upgrade`` (the dev server upgrades on start)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call on every start. At head, also make sure the
    server's keys that requests need exist (the page-link key)."""
    command.upgrade(alembic_config(engine), revision)
    if revision == "head":
        from app.fhir.paging import ensure_key

        ensure_key(engine)
