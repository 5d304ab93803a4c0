from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import app.db  # noqa: F401  (registers the tables on SQLModel.metadata)
import app.auth.models  # noqa: F401
import app.x12_control  # noqa: F401
import app.outbox  # noqa: F401
import app.directory.tables  # noqa: F401
import app.payers.models  # noqa: F401

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=SQLModel.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
