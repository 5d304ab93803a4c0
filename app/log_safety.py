"""What an error may say where people read it (logs, job rows, Tasks): its kind, never data.

A database error's text carries data: SQLAlchemy appends the statement and its parameters
(``[parameters: …]``: resource JSON, search values such as a name and a birth date), and
PostgreSQL's messages quote offending values. So a database error is described by its class,
its SQLSTATE (or SQLite error name) and the schema objects it names (constraint, table,
column), never by its message. Where it happened is told by file, line and function only: no
message, no values.
"""
from __future__ import annotations

import sqlite3
import traceback
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

try:  # the PostgreSQL drivers are installed with the product, but SQLite needs neither
    import psycopg
    _PSYCOPG: tuple[type[BaseException], ...] = (psycopg.Error,)
except ImportError:  # pragma: no cover
    _PSYCOPG = ()
try:
    import asyncpg
    _ASYNCPG: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError)
except ImportError:  # pragma: no cover
    _ASYNCPG = ()

DATABASE_ERRORS: tuple[type[BaseException], ...] = (SQLAlchemyError, sqlite3.Error, *_PSYCOPG, *_ASYNCPG)


def is_database_error(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


def describe_database_error(exc: BaseException) -> str:
    """``IntegrityError (SQLSTATE 23505, constraint uq_x)``: what went wrong, without the data."""
    driver = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's exception
    facts = []
    code = getattr(driver, "sqlstate", None) or getattr(driver, "sqlite_errorname", None)
    if code:
        facts.append(f"SQLSTATE {code}" if getattr(driver, "sqlstate", None) else str(code))
    diag = getattr(driver, "diag", driver)  # psycopg keeps them in .diag, asyncpg on the error
    for what in ("constraint", "table", "column"):
        name = getattr(diag, f"{what}_name", None)
        if isinstance(name, str) and name:
            facts.append(f"{what} {name}")
    name = type(exc).__name__
    if driver is not exc:
        name += f"/{type(driver).__name__}"
    return name + (f" ({', '.join(facts)})" if facts else "")


def describe(exc: BaseException) -> str:
    """A summary safe to log or store: database errors by kind only, others with their message
    (the server's own errors say in words what is wrong, not with the data)."""
    if is_database_error(exc):
        return describe_database_error(exc)
    return f"{type(exc).__name__}: {exc}"


def describe_kind(exc: BaseException) -> str:
    """The least that says what failed: a database error's kind, or any other error's class."""
    return describe_database_error(exc) if is_database_error(exc) else type(exc).__name__


def where(exc: BaseException, frames: int = 4) -> str:
    """The innermost frames of the traceback as ``dir/file.py:line function``, innermost first."""
    stack = traceback.extract_tb(exc.__traceback__)[-frames:]
    return " < ".join(f"{'/'.join(Path(f.filename).parts[-2:])}:{f.lineno} {f.name}" for f in reversed(stack))
