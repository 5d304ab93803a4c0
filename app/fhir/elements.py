"""``_elements``: resources with only the top-level elements a client asked for (R4 search.html,
"_elements"; honoured on search, read and vread).

A subsetted resource keeps ``resourceType``, ``id`` and ``meta``, the listed elements, and,
whether listed or not, the mandatory ones (minimum cardinality 1 or more) and the modifier
elements, which change the meaning of the rest (``Patient.active``, ``modifierExtension``); the
spec asks servers to return mandatory elements and clients to list modifiers, so keeping both
never hides a meaning. ``meta.tag`` gains ``SUBSETTED`` (v3 ObservationValue) so nobody writes
the partial resource back over the whole one. Resources added by ``_include``/``_revinclude``
are not subsetted: the spec applies the list to the matches only.

Names are element names (``status``, ``name``); a dotted path keeps its top-level element, a
choice element may be named without or with its type (``deceased``, ``deceasedBoolean``), and
a primitive's ``_element`` sibling (its extensions) goes with it. Unknown names are ignored.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from app.fhir import exact_json

DATA = Path(__file__).resolve().parent / "data" / "mandatory_elements.json"
SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED",
             "display": "subsetted"}
ALWAYS = frozenset({"resourceType", "id", "meta"})


@lru_cache(maxsize=1)
def _mandatory() -> dict[str, frozenset[str]]:
    return {rtype: frozenset(keys) for rtype, keys in json.loads(DATA.read_text())["resources"].items()}


def parse_elements(raw: str) -> tuple[str, ...]:
    """The top-level element names of an ``_elements`` value (``name.given`` → ``name``)."""
    names = (part.strip().split(".")[0].removesuffix("[x]") for part in raw.split(","))
    return tuple(dict.fromkeys(n for n in names if n))


def _wanted(key: str, names: Iterable[str]) -> bool:
    for name in names:
        if key == name or (key.startswith(name) and key[len(name):len(name) + 1].isupper()):
            return True
    return False


def subset_resource(resource: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """``resource`` with only ``names``, the always-kept elements, and the ``SUBSETTED`` tag."""
    keep = ALWAYS | _mandatory().get(resource.get("resourceType", ""), frozenset())
    out = {k: v for k, v in resource.items() if k.lstrip("_") in keep or _wanted(k.lstrip("_"), names)}
    meta = dict(out.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("system") == SUBSETTED["system"] and t.get("code") == SUBSETTED["code"]
               for t in tags if isinstance(t, dict)):
        tags.append(SUBSETTED)
    meta["tag"] = tags
    out["meta"] = meta  # stored resources carry meta, so it keeps its place after id
    return out


def subset(content: str, names: tuple[str, ...]) -> str:
    """Stored JSON text of a resource → the subsetted resource's JSON text (decimals as stored)."""
    return exact_json.dumps(subset_resource(exact_json.loads(content), names)).decode()
