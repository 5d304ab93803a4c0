"""The one gate between a caller and a resource type: which interactions the type offers, and
which scopes open them.

Every path to a type asks here, so no path can be more permissive than another: the FHIR
routes (read, search, create, update, delete, history, version read), each entry of a batch or
transaction Bundle (whatever its method), system history, the operations' scope checks, and the
store, whose writes refuse an interaction the type does not offer and whose reads for a caller
(searches, ``_include``/``_revinclude``) never serve a type kept outside the resource store.

What a type offers is data (``interactions`` in ``data/resource_types.json``; all of
:data:`~app.fhir.registry.INTERACTIONS` when absent). An interaction not offered is 405 on every
path. A type served from the audit trail (AuditEvent) is the server's own record: it is read
only with a scope that names it (``user/AuditEvent.rs``, given to auditors) or admin access,
because wildcard scopes such as ``user/*.rs`` are what ordinary clinical apps hold.
"""
from __future__ import annotations

from typing import Any

from app.fhir.access import Access, access_for
from app.fhir.errors import FhirError
from app.fhir.registry import Registry, ResourceType
from app.security import AccessContext

# The SMART v2 permission letter each FHIR interaction needs.
SCOPE_LETTER = {"create": "c", "read": "r", "vread": "r", "update": "u", "patch": "u", "delete": "d",
                "history-instance": "r", "history-type": "s", "search-type": "s"}
VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
ADMIN_SCOPE = "__admin"
DENIED = Access(deny=True)


def resource_type(registry: Registry, rtype: str) -> ResourceType:
    rt = registry.get(rtype)
    if rt is None:
        raise FhirError(404, "not-supported", f"Resource type '{rtype}' is not supported by this server")
    return rt


def check_offered(registry: Registry, interaction: str, rtype: str) -> None:
    """405 unless ``rtype`` offers ``interaction`` (a FHIR restful-interaction code)."""
    rt = resource_type(registry, rtype)
    if interaction not in rt.interactions:
        offered = ", ".join(rt.interactions)
        why = (" (it is the server's audit trail: written by the server only, never through the API)"
               if rt.audit_trail else "")
        raise FhirError(405, "not-supported", f"{rtype} does not support {interaction}{why}; "
                        f"it offers {offered}")


def scope_allows(ctx: AccessContext, letter: str, rt: ResourceType) -> bool:
    """Whether the caller's scopes grant ``letter`` (c r u d s) on the type."""
    scopes: Any = ctx.scopes
    if not rt.audit_trail:
        return bool(scopes.allows(letter, rt.name))
    named = any(getattr(s, "resource_type", None) == rt.name and s.matches(letter, rt.name)
                for s in getattr(scopes, "resources", ()))
    return named or (hasattr(scopes, "has") and bool(scopes.has(ADMIN_SCOPE)))


def require_scope(ctx: AccessContext, registry: Registry, letter: str, rtype: str) -> None:
    """403 (``insufficient_scope``) unless the caller's scopes grant ``letter`` on ``rtype``."""
    rt = resource_type(registry, rtype)
    if not scope_allows(ctx, letter, rt):
        needs = (f"; reading the audit trail needs a scope that names {rtype} (auditors) or admin access"
                 if rt.audit_trail else "")
        raise FhirError(403, "forbidden", f"The access token does not permit {VERBS[letter]} on {rtype}{needs}",
                        headers={"WWW-Authenticate": 'Bearer realm="therabridge", error="insufficient_scope"'})


def permit(ctx: AccessContext, registry: Registry, interaction: str, rtype: str) -> None:
    """The gate of one interaction: 404 for an unknown type, 405 when the type does not offer
    it, 403 when the caller's scopes do not grant it."""
    check_offered(registry, interaction, rtype)
    require_scope(ctx, registry, SCOPE_LETTER[interaction], rtype)


def store_access(ctx: AccessContext, registry: Registry, letter: str, rtype: str) -> Access:
    """The store's row filter for a caller: its compartment and granular scopes, and nothing at
    all of a type the resource store does not serve (the audit trail lives elsewhere), so a
    search, an include or a Bundle entry cannot reach such rows."""
    rt = registry.get(rtype)
    if rt is not None and rt.audit_trail:
        return DENIED
    return access_for(ctx, letter, rtype)
