"""Row-level access beyond the tenant: the patient compartment and granular scope filters.

SMART ``patient/`` scopes confine a token to its patient's compartment (R4
CompartmentDefinition/patient; membership is data in the registry), and v2 scopes may carry
``?param=value`` filters. Both become SQL conditions applied by the store to searches, reads and
included resources, so a route cannot forget them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from app.fhir.errors import FhirError
from app.fhir.extract import extract, param_values, reference_of
from app.fhir.registry import Registry
from app.fhir.search_params import parse_search
from app.fhir.search_sql import REF, R, clause_condition
from app.security import AccessContext


@dataclass(frozen=True)
class Access:
    patient: str | None = None  # confine to this patient's compartment
    granular: tuple[tuple[tuple[str, str], ...], ...] | None = None  # OR of AND-ed filters; None = all
    deny: bool = False

    @property
    def unrestricted(self) -> bool:
        return self.patient is None and self.granular is None and not self.deny


EVERYTHING = Access()


def access_for(ctx: AccessContext, interaction: str, rtype: str) -> Access:
    scopes = ctx.scopes
    if not scopes.allows(interaction, rtype):
        return Access(deny=True)
    granular = scopes.restrictions(rtype, interaction)
    if scopes.patient_scoped(interaction, rtype):
        if not ctx.patient:
            return Access(deny=True)
        patient = ctx.patient
    else:
        patient = None
    if granular is None and patient is None:
        return EVERYTHING
    return Access(patient, None if granular is None else tuple(tuple(sorted(g.items())) for g in granular))


def conditions(access: Access, tenant_id: str, rtype: str, registry: Registry) -> list[ColumnElement]:
    if access.unrestricted:
        return []
    if access.deny:
        return [sa.false()]
    rt = registry.types[rtype]
    out: list[ColumnElement] = []
    if access.patient is not None:
        if rt.compartment == "excluded":
            return [sa.false()]
        if rt.compartment != "shared":
            params = [p for p in rt.compartment if p != "_id"]
            linked = R.c.pk.in_(sa.select(REF.c.res_pk).where(
                REF.c.tenant_id == tenant_id, REF.c.type == rtype, REF.c.param.in_(params),
                REF.c.target_type == "Patient", REF.c.target_id == access.patient)) if params else sa.false()
            out.append(sa.or_(R.c.id == access.patient, linked) if rtype == "Patient" else linked)
    if access.granular is not None:
        alternatives = []
        for pairs in access.granular:
            query = parse_search(rt, list(pairs), registry=registry)
            alternatives.append(sa.and_(*(clause_condition(tenant_id, rtype, c) for c in query.clauses)))
        out.append(sa.or_(*alternatives) if alternatives else sa.false())
    return out


def check_write(access: Access, resource: dict[str, Any], registry: Registry, base: str) -> None:
    """A write under patient scopes must stay inside the patient's compartment; granular write
    scopes are not evaluated against unsaved resources, so they are refused."""
    if access.unrestricted:
        return
    rtype = resource.get("resourceType", "")
    if access.deny or access.granular is not None:
        raise FhirError(403, "forbidden", f"The access token does not permit this write on {rtype}")
    rt = registry.types[rtype]
    if rt.compartment in ("shared", "excluded"):
        raise FhirError(403, "forbidden", f"A patient-scoped token may not write {rtype}")
    if rtype == "Patient":
        if resource.get("id") == access.patient:
            return
    else:
        refs = extract(resource, rt, base).references
        if any(p in rt.compartment and t == "Patient" and i == access.patient for p, t, i in refs):
            return
    raise FhirError(403, "forbidden", f"The {rtype} is outside the patient compartment this token is limited to")


def compartment_patient(resource: dict[str, Any], registry: Registry, base: str) -> str | None:
    """The patient whose compartment holds ``resource`` (for audit), if it is in one."""
    rtype = resource.get("resourceType", "")
    if rtype == "Patient":
        return resource.get("id")
    rt = registry.types.get(rtype)
    if rt is None or isinstance(rt.compartment, str):
        return None
    # only the compartment's reference parameters, in the order ``extract`` lists them (every
    # server write is audited: extracting the whole index again for this cost a tenth of posting)
    for param in rt.params.values():
        if param.type != "reference" or param.name not in rt.compartment:
            continue
        for value in param_values(resource, param):
            target = reference_of(value, param, base)
            if target and target[0] == "Patient":
                return target[1]
    return None
