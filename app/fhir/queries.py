"""Searches the server runs for its own work, with the store's search semantics: the resources
matching search parameters, and the references an element holds. Generic: any package may use
them to read the store (claims gather a visit, payers find a claim by its control number)."""
from __future__ import annotations

from typing import Any, Iterable

import orjson

from app.fhir.registry import registry
from app.fhir.search_params import parse_search
from app.fhir.store import Reader


def escaped(value: str) -> str:
    """A literal search value: the characters that separate or prefix values (``,``, ``|``,
    ``$``) and the escape itself, escaped."""
    return "".join("\\" + c if c in ",|$\\" else c for c in value)


def find_resources(reader: Reader, rtype: str, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    reg = registry()
    query = parse_search(reg.get(rtype), [*items, ("_count", "1000")], registry=reg, max_count=1000)
    query.total = "none"
    return [orjson.loads(v.content) for v in reader.search(query).matches if v.content]


def find_all(reader: Reader, rtype: str, items: list[tuple[str, str]], page: int = 1000) -> list[dict[str, Any]]:
    """Every match, page after page (``find_resources`` answers the first 1,000 only): for a
    sweep over all of a tenant's resources of a kind."""
    reg = registry()
    query = parse_search(reg.get(rtype), [*items, ("_count", str(page))], registry=reg, max_count=page)
    query.total = "none"
    out: list[dict[str, Any]] = []
    while True:
        result = reader.search(query)
        out += [orjson.loads(v.content) for v in result.matches if v.content]
        if not result.next_cursor:
            return out
        query.page = result.next_cursor


def find_referring(reader: Reader, rtype: str, param: str, target_type: str, ids: list[str]) -> list[dict[str, Any]]:
    """The ``rtype`` resources whose reference parameter ``param`` points at any of the
    ``target_type`` resources ``ids`` (an 835's patients to their Coverages, its claims to their
    Tasks): by index lookups (``Reader.by_reference``), or, for a caller whose access is
    filtered, by the search that applies it."""
    found = reader.by_reference(rtype, param, target_type, ids)
    if found is None:
        return find_all(reader, rtype, [(param, ",".join(f"{target_type}/{escaped(i)}" for i in ids))]) if ids else []
    return [v.resource() for v in found]


def references_under(node: Any, keys: Iterable[str]) -> Iterable[str]:
    """Every ``Reference.reference`` held by an element named in ``keys``, anywhere below ``node``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys:
                for ref in value if isinstance(value, list) else [value]:
                    if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
                        yield ref["reference"]
            yield from references_under(value, keys)
    elif isinstance(node, list):
        for item in node:
            yield from references_under(item, keys)
