"""Required terminology bindings (R4 terminologies.html, binding strength "required").

The fhir.resources models check structure and datatypes only, so ``Encounter.status: "bogus"``
passes them. This module checks every element of type code, Coding or CodeableConcept whose
binding R4 marks *required* against the codes of its value set: in the resource itself, in its
backbone elements, in datatypes wherever they occur (``HumanName.use``, ``ContactPoint.system``,
``Identifier.use``, ``Quantity.comparator``; extension values included) and in contained
resources. A code element must hold a code of the value set; a Coding its system and code; a
CodeableConcept at least one such Coding.

The element tree and the expanded value sets come from ``data/required_bindings.json``,
generated from the published R4 definitions by ``tools/r4_definitions.py``; value sets that
cannot be expanded from them (mime types, currencies) are listed there and not enforced.
The walk follows the JSON present, not the type graph, so it costs one dict lookup per element.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.fhir.errors import issue

DATA = Path(__file__).resolve().parent / "data" / "required_bindings.json"
LISTED = 12  # value sets up to this size are spelled out in the error

# A node maps a JSON key to what it holds: (_NODE, node), (_RESOURCE, None) or
# (kind, (codes, value set url)) for a bound code, Coding or CodeableConcept.
_NODE, _RESOURCE, _CODE, _CODING, _CONCEPT = range(5)
_KINDS = {"code": _CODE, "Coding": _CODING, "CodeableConcept": _CONCEPT}
Node = dict[str, tuple[int, Any]]
Loc = tuple[Any, ...]  # (parent loc, key or index): the FHIRPath, built only for an error


class ValueSet:
    """The codes of one expanded value set."""

    def __init__(self, url: str, by_system: dict[str, list[str]]) -> None:
        self.url = url
        self.codes = frozenset(c for codes in by_system.values() for c in codes)
        self.pairs = frozenset((s, c) for s, codes in by_system.items() for c in codes)
        self.systems = sorted(by_system)

    def expected(self) -> str:
        return f"; expected one of {', '.join(sorted(self.codes))}" if len(self.codes) <= LISTED else ""


@lru_cache(maxsize=1)
def _tree() -> dict[str, Node]:
    data = json.loads(DATA.read_text())
    value_sets = {url: ValueSet(url, systems) for url, systems in data["valueSets"].items()}
    nodes: dict[str, Node] = {name: {} for name in data["types"]}
    for name, entries in data["types"].items():
        node = nodes[name]
        for key, spec in entries.items():
            if "type" in spec:
                node[key] = (_NODE, nodes[spec["type"]])
            elif spec.get("resource"):
                node[key] = (_RESOURCE, None)
            elif spec["binding"] in value_sets:  # the unchecked ones are left out
                node[key] = (_KINDS[spec["as"]], value_sets[spec["binding"]])
    return nodes


def _path(loc: Loc) -> str:
    parts: list[str] = []
    while loc:
        loc, step = loc
        parts.append(f"[{step}]" if isinstance(step, int) else f".{step}")
    return "".join(reversed(parts)).lstrip(".")


def _items(value: Any, loc: Loc) -> list[tuple[Any, Loc]]:
    if isinstance(value, list):
        return [(item, (loc, i)) for i, item in enumerate(value)]
    return [(value, loc)]


def _coding_ok(coding: Any, vs: ValueSet) -> bool:
    return isinstance(coding, dict) and (coding.get("system"), coding.get("code")) in vs.pairs


class _Walk:
    def __init__(self, nodes: dict[str, Node], limit: int) -> None:
        self.nodes = nodes
        self.limit = limit
        self.issues: list[dict[str, Any]] = []

    def fail(self, loc: Loc, message: str) -> None:
        if len(self.issues) < self.limit:
            where = _path(loc)
            self.issues.append(issue("code-invalid", f"{where}: {message}", expression=[where]))

    def resource(self, resource: Any, loc: Loc) -> None:
        node = self.nodes.get(resource.get("resourceType")) if isinstance(resource, dict) else None
        if node is not None:
            self.element(node, resource, loc)

    def element(self, node: Node, obj: Any, loc: Loc) -> None:
        if not isinstance(obj, dict):
            return
        for key, value in obj.items():
            spec = node.get(key)
            if spec is None:
                continue
            kind, target = spec
            if kind == _NODE:
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        self.element(target, item, ((loc, key), i))
                else:
                    self.element(target, value, (loc, key))
            elif kind == _CODE:
                for code, at in _items(value, (loc, key)):
                    if isinstance(code, str) and code not in target.codes:
                        self.fail(at, f"'{code}' is not in the required value set {target.url}"
                                      f"{target.expected()}")
            elif kind == _CODING:
                for coding, at in _items(value, (loc, key)):
                    if not _coding_ok(coding, target):
                        self.fail(at, f"the Coding is not in the required value set {target.url} "
                                      f"(system {' or '.join(target.systems)}){target.expected()}")
            elif kind == _CONCEPT:
                for concept, at in _items(value, (loc, key)):
                    if not isinstance(concept, dict) or not any(_coding_ok(c, target)
                                                                for c in concept.get("coding") or []):
                        self.fail(at, f"no coding is from the required value set {target.url} "
                                      f"(system {' or '.join(target.systems)}){target.expected()}")
            else:  # contained resources
                for item, at in _items(value, (loc, key)):
                    self.resource(item, at)


def binding_issues(resource: dict[str, Any], where: str, limit: int = 25) -> list[dict[str, Any]]:
    """OperationOutcome issues (code ``code-invalid``) for the codes of ``resource`` outside
    their required value sets; ``where`` is the FHIRPath of the resource (its type, or e.g.
    ``Bundle.entry[0].resource``). Empty when every bound code is allowed."""
    walk = _Walk(_tree(), limit)
    walk.resource(resource, ((), where))
    return walk.issues
