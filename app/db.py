"""Database engine and schema.

One generic resource store: ``resource`` holds the current version of every
resource, ``resource_history`` every version, and the ``search_*`` tables the extracted search
index values, all written in one transaction. Every row carries its tenant.

SQLite is the embedded default; PostgreSQL is production. Differences are confined here:
SQLite write transactions start with ``BEGIN IMMEDIATE`` so writers serialize up front instead
of failing with SQLITE_BUSY half-way, and the document columns are ``json`` (resources, kept
as written) or ``JSONB`` on PostgreSQL.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlmodel import Field, SQLModel

# SQLite only aliases INTEGER PRIMARY KEY to its rowid; BIGINT would not auto-increment.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class JSONDocument(sa.types.UserDefinedType):
    """A JSON document stored as TEXT on SQLite and JSONB on PostgreSQL.

    Values travel as already-serialized JSON text in both directions, so reads can hand the
    stored bytes to the client without parsing them into Python objects.
    """

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "TEXT"

    def column_expression(self, colexpr):  # type: ignore[no-untyped-def]
        return sa.cast(colexpr, sa.Text)

    @property
    def python_type(self) -> type:
        return str


@compiles(JSONDocument, "postgresql")
def _jsonb(type_: JSONDocument, compiler: object, **kw: object) -> str:
    return "JSONB"


class VerbatimJSON(JSONDocument):
    """A JSON document kept exactly as written: TEXT on SQLite, ``json`` on PostgreSQL.

    JSONB rewrites numbers (``1e2`` becomes ``100``) and reorders keys, but a FHIR decimal's
    precision is part of its value, so resources must come back as they were sent. ``json``
    checks the text and stores it unchanged (and reading it back needs no conversion)."""

    cache_ok = True


@compiles(VerbatimJSON, "postgresql")
def _json(type_: VerbatimJSON, compiler: object, **kw: object) -> str:
    return "JSON"


class Tenant(SQLModel, table=True):
    __tablename__ = "tenant"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    created_at: datetime


class VersionRow(SQLModel):
    """What identifies one version of one resource of a tenant."""

    pk: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    tenant_id: str = Field(max_length=64)
    type: str = Field(max_length=64)
    id: str = Field(max_length=64)
    version_id: int
    last_updated: datetime


class ResourceRow(VersionRow, table=True):
    """Current version of each resource (deleted ones stay, flagged, so reads can answer 410)."""

    __tablename__ = "resource"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "type", "id", name="uq_resource_identity"),
        sa.Index("ix_resource_type_updated", "tenant_id", "type", "last_updated"),
    )
    deleted: bool = False
    content: str = Field(sa_column=sa.Column(VerbatimJSON(), nullable=False))


class ResourceHistoryRow(VersionRow, table=True):
    """Every version ever written; a deletion is a version without content."""

    __tablename__ = "resource_history"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "type", "id", "version_id", name="uq_history_version"),
        sa.Index("ix_history_type_updated", "tenant_id", "type", "last_updated"),
        sa.Index("ix_history_updated", "tenant_id", "last_updated"),
    )
    method: str = Field(max_length=8)
    deleted: bool = False
    content: str | None = Field(default=None, sa_column=sa.Column(VerbatimJSON(), nullable=True))


class IndexRow(SQLModel):
    """The columns every search index row has: its tenant, the resource's type and row, the
    search parameter (each table adds the values of its kind)."""

    pk: int | None = Field(default=None, primary_key=True, sa_type=BigId)
    tenant_id: str = Field(max_length=64)
    type: str = Field(max_length=64)
    res_pk: int = Field(sa_type=BigId, nullable=False)  # resource.pk (no constraint: migration 0008)
    param: str = Field(max_length=64)


class SearchToken(IndexRow, table=True):
    __tablename__ = "search_token"
    __table_args__ = (
        sa.Index("ix_token_lookup", "tenant_id", "type", "param", "code"),
        sa.Index("ix_token_res", "res_pk", "param"),
    )
    system: str | None = Field(default=None, max_length=255)
    code: str | None = Field(default=None, max_length=255)


class SearchString(IndexRow, table=True):
    __tablename__ = "search_string"
    __table_args__ = (
        sa.Index("ix_string_lookup", "tenant_id", "type", "param", "value"),
        sa.Index("ix_string_res", "res_pk", "param"),
    )
    value: str = Field(max_length=255)  # case- and accent-folded, for starts-with / contains
    exact: str = Field(max_length=255)  # as written, for :exact


class SearchDate(IndexRow, table=True):
    __tablename__ = "search_date"
    __table_args__ = (
        sa.Index("ix_date_lookup", "tenant_id", "type", "param", "start"),
        sa.Index("ix_date_res", "res_pk", "param"),
    )
    start: datetime
    end: datetime


class SearchReference(IndexRow, table=True):
    __tablename__ = "search_reference"
    __table_args__ = (
        sa.Index("ix_reference_lookup", "tenant_id", "type", "param", "target_id"),
        sa.Index("ix_reference_target", "tenant_id", "target_type", "target_id"),
        sa.Index("ix_reference_res", "res_pk", "param"),
    )
    target_type: str = Field(max_length=64)
    target_id: str = Field(max_length=64)


class SearchNumber(IndexRow, table=True):
    """Number and money values (``Claim.total``, a Task's priority score), as whole
    ten-thousandths: sums and comparisons are exact on both databases (SQLite has no exact
    decimal type); a value with more than four decimal places is rounded half-even."""

    __tablename__ = "search_number"
    __table_args__ = (
        sa.Index("ix_number_lookup", "tenant_id", "type", "param", "value"),
        sa.Index("ix_number_res", "res_pk", "param"),
    )
    value: int = Field(sa_type=sa.BigInteger, nullable=False)


def make_engine(url: str) -> Engine:
    """Create the engine for ``url`` with the per-backend settings the store relies on."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        in_memory = not path or path == ":memory:"
        if not in_memory:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        pool = {} if in_memory else {"pool_size": 8, "max_overflow": 8}
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        # SQLite has one writer at a time. Writers of this process queue on a lock instead of
        # polling in SQLite's busy handler, whose growing sleeps make long latency tails; the
        # busy timeout still arbitrates between processes.
        write_lock = threading.Lock()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            options = conn.get_execution_options()
            if options.get("isolation_level") == "AUTOCOMMIT":
                return
            if options.get("write", False):
                write_lock.acquire()
                conn.info["holds_write_lock"] = True
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                except BaseException:
                    _release(conn)
                    raise
            else:
                conn.exec_driver_sql("BEGIN")

        def _release(conn: Connection) -> None:
            if conn.info.pop("holds_write_lock", False):
                write_lock.release()

        sa.event.listen(engine, "commit", _release)
        sa.event.listen(engine, "rollback", _release)

        return engine
    # No pre-ping: it costs a round trip per checkout; broken connections are invalidated on error.
    # The pool keeps as many connections as the server's request threads can use at once: an
    # overflow connection is closed on return, and opening PostgreSQL connections per request
    # (a process fork each) cut creates under 32 concurrent clients by a third.
    return sa.create_engine(url, pool_size=32, max_overflow=8, pool_recycle=1800)


def write_connection(engine: Engine) -> Connection:
    """A connection whose transaction takes the write lock at BEGIN (SQLite) — use for writes."""
    return engine.connect().execution_options(write=True)


def is_postgres(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def dialect_insert(conn_or_engine: Connection | Engine, table: sa.Table) -> Any:
    """An INSERT with the dialect's ``ON CONFLICT`` clauses (both PostgreSQL and SQLite have
    them): concurrent writers settle races in the database, not by check-then-insert."""
    dialect = sa.dialects.postgresql if is_postgres(conn_or_engine) else sa.dialects.sqlite
    return dialect.insert(table)


def iter_tables() -> Iterator[sa.Table]:
    yield from SQLModel.metadata.sorted_tables
