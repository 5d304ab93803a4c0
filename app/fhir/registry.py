"""The resource types this server serves and their search parameters, loaded from data.

The router, the indexer, the search parser and the CapabilityStatement all read this one
registry, so what is advertised is exactly what is served.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

ParamType = Literal["token", "string", "date", "reference", "number"]

DATA = Path(__file__).resolve().parent / "data" / "resource_types.json"

# Parameters every type supports, evaluated on the resource table itself (R4 search.html §3.1.1).
COMMON_PARAMS: dict[str, ParamType] = {"_id": "token", "_lastUpdated": "date"}

RESULT_PARAMS = frozenset({"_count", "_sort", "_total", "_include", "_revinclude", "_summary", "_elements", "_page",
                           "_format"})

INTERACTIONS = ("read", "vread", "update", "delete", "history-instance", "history-type", "create", "search-type")


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: ParamType
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    extension: str | tuple[str, ...] | None = None  # read the value[x] of the extensions with this url (one of these urls) at ``paths``
    canonical: bool = False  # a token on a canonical ``url|version``: matches ``url`` and ``url|version``
    # A number derived from other index rows instead of read from the resource, recomputed when
    # either side is written (app.fhir.store.derived): {"from": param, "minus": {"type": T,
    # "param": p, "via": reference param of T}} is this resource's ``from`` value less the sum of
    # ``p`` over the T resources whose ``via`` points at it.
    derived: dict | None = None  # type: ignore[type-arg]
    documentation: str | None = None  # for the parameters of our own (CapabilityStatement, OpenAPI)
    sortable: bool = False  # a token or reference parameter ``_sort`` accepts (dates and numbers always)


@dataclass(frozen=True)
class ResourceType:
    name: str
    params: dict[str, SearchParam] = field(default_factory=dict)
    # Patient-compartment membership: the linking parameters, or "shared" / "excluded".
    compartment: tuple[str, ...] | str = "excluded"
    # The REST interactions offered for the type (``app.fhir.interactions`` refuses the others).
    interactions: tuple[str, ...] = INTERACTIONS
    # Served from the append-only audit trail, not the resource store (AuditEvent).
    audit_trail: bool = False
    # Said in the CapabilityStatement (e.g. who writes the type).
    documentation: str | None = None

    @property
    def date_params(self) -> list[str]:
        return [p.name for p in self.params.values() if p.type == "date"]

    @property
    def sort_params(self) -> list[str]:
        """The parameters ``_sort`` accepts (one value per resource is what sorting assumes)."""
        return [p.name for p in self.params.values() if p.type in ("date", "number") or p.sortable]

    @property
    def reference_params(self) -> list[SearchParam]:
        return [p for p in self.params.values() if p.type == "reference"]


@dataclass(frozen=True)
class Registry:
    types: dict[str, ResourceType]

    def get(self, name: str) -> ResourceType | None:
        return self.types.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self.types

    def offering(self, interaction: str) -> list[str]:
        """The types that offer ``interaction`` (e.g. ``history-type``: what system history covers)."""
        return [name for name, rt in self.types.items() if interaction in rt.interactions]


def load_registry(path: Path = DATA) -> Registry:
    raw = json.loads(path.read_text())
    types: dict[str, ResourceType] = {}
    for name, spec in raw["resources"].items():
        params = {
            pname: SearchParam(pname, p["type"], tuple(p.get("path", ())), tuple(p.get("target", ())),
                               tuple(p["extension"]) if isinstance(p.get("extension"), list) else p.get("extension"),
                               bool(p.get("canonical")), p.get("derived"), p.get("documentation"),
                               bool(p.get("sortable")))
            for pname, p in spec["search"].items()
        }
        comp = spec.get("compartment", "excluded")
        unknown = set(spec.get("interactions", ())) - set(INTERACTIONS)
        if unknown:
            raise ValueError(f"{path.name}: {name} lists unknown interactions {sorted(unknown)}")
        types[name] = ResourceType(name, params, tuple(comp) if isinstance(comp, list) else comp,
                                   tuple(spec.get("interactions", INTERACTIONS)), bool(spec.get("auditTrail")),
                                   spec.get("documentation"))
    return Registry(types)


@lru_cache(maxsize=1)
def registry() -> Registry:
    return load_registry()
