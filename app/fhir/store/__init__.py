"""The generic FHIR resource store: one table of current versions, one of history, and search
index tables (token, string, date, reference, number), every row carrying its tenant.

``Store.for_tenant(tenant_id)`` gives a :class:`TenantStore`; every statement it issues is
filtered by that tenant, so the routes never handle tenancy themselves. Writes go through a
:class:`Unit` (one database transaction): the current row, the history row and the search
index rows of a write commit together, and a transaction Bundle runs all its entries in one Unit.

Concurrency rules, enforced by the database rather than by check-then-write:
- updates are compare-and-set on ``version_id`` (two updates with the same ``If-Match``: one
  wins, the other gets 412; versions never repeat thanks to the history unique key);
- a change the server derives from what is stored goes through ``Unit.modify``, which re-applies
  it to the newer version when another writer got there first;
- conditional create/update take a lock on their query (``pg_advisory_xact_lock`` on
  PostgreSQL; SQLite write transactions are already serialized by ``BEGIN IMMEDIATE``).

Modules, top to bottom (each imports only those below it): ``store`` (the Store of every
tenant) → ``tenant`` (one tenant's view, PostgreSQL fast paths) → ``unit`` (writes) → ``reader``
(reads) → ``rows`` (reads by id on a raw cursor), ``pg_writes`` (one-statement writes),
``async_pg`` (asyncpg) → ``types`` (values and plug-in contracts).
"""
from app.fhir.store.reader import Reader
from app.fhir.store.store import Store
from app.fhir.store.tenant import TenantStore
from app.fhir.store.types import (
    Guard, NeedsTransaction, Observer, SearchResult, Version, WriteResult, in_key_order, serialize,
)
from app.fhir.store.unit import Unit

__all__ = ["Guard", "NeedsTransaction", "Observer", "Reader", "SearchResult", "Store", "TenantStore", "Unit",
           "Version", "WriteResult", "in_key_order", "serialize"]
