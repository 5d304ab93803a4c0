"""Real database errors on demand, for the tests of what the server does and logs when the
database fails: a trigger that refuses rows holding a marker string."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from app.db import make_engine


@contextmanager
def refusing_resources_with(database_url: str, marker: str) -> Iterator[None]:
    """While inside, inserting a ``resource`` row whose JSON contains ``marker`` fails in the
    database itself (a trigger raises), on SQLite and PostgreSQL alike."""
    engine = make_engine(database_url)
    postgres = database_url.startswith("postgresql")
    with engine.begin() as conn:
        if postgres:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_marked() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF strpos(NEW.content::text, '{marker}') > 0 THEN RAISE EXCEPTION 'refused by the test trigger'; "
                "END IF; RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER refuse_marked BEFORE INSERT ON resource FOR EACH ROW "
                                 "EXECUTE FUNCTION refuse_marked()")
        else:
            conn.exec_driver_sql(f"CREATE TRIGGER refuse_marked BEFORE INSERT ON resource WHEN "
                                 f"instr(NEW.content, '{marker}') > 0 BEGIN "
                                 "SELECT RAISE(ABORT, 'refused by the test trigger'); END")
    try:
        yield
    finally:
        with engine.begin() as conn:
            if postgres:
                conn.exec_driver_sql("DROP TRIGGER refuse_marked ON resource")
                conn.exec_driver_sql("DROP FUNCTION refuse_marked()")
            else:
                conn.exec_driver_sql("DROP TRIGGER refuse_marked")
        engine.dispose()
