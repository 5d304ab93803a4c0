"""The payer directory: each tenant's payer connections (adapter kind, settings, encrypted
credentials, the profile its claims are billed under, contract terms).

It sits below claims (a claim asks it which profile to bill under) and imports nothing above
it; what must happen when a connection is added (the payer side starts collecting answers) is
a hook, ``ON_ADD``, installed by ``app.bootstrap``. Modules: ``connections`` (the API below),
``secrets`` (credential encryption), ``tables``.
"""
from app.directory.connections import (
    ON_ADD, DirectoryError, PayerLink, add, by_pk, for_insurer, for_insurer_in, get, list_connections,
    reencrypt_all, rotate_credentials,
)

__all__ = ["ON_ADD", "DirectoryError", "PayerLink", "add", "by_pk", "for_insurer", "for_insurer_in", "get",
           "list_connections", "reencrypt_all", "rotate_credentials"]
