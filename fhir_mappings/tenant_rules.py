"""A practice's own payer rules ("tenant rules"): edits a biller adds for one payer after it kept
denying something, kept as data in a rule pack and applied by the scrubber like the catalog's.

A rule pack is a FHIR ``Library`` (type ``logic-library``, profile ``vocabulary.PAYER_RULE_PACK``)
whose ``content[0]`` is ``application/json``: ``{"rules": [rule, ...]}``, shape in
``data/tenant_rules.json`` (PROFILE.md, Tenant payer rules). The payer is the Library's
``useContext`` with code ``payer`` and a ``valueReference`` to the payer Organization. Packs are
versioned (``version``, a whole number) and effective-dated (``effectivePeriod``); the pack used
for a claim is the active one of its payer in force on the claim's date of service, the newest
start winning (a new version supersedes from its start; an older claim keeps the rules of its
day). Rules match data only (codes, modifiers, diagnoses, place of service, profile): nothing in
a pack is executed.

Pure like the rest of the package: the server reads the tenant's packs and passes them in.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, cached_property
from typing import Any

import fhir_mappings.vocabulary as vocabulary
from fhir_mappings.claim_items import Item, read_items
from fhir_mappings.outcome import issue
from fhir_mappings.profiles import PayerProfile, profile_names
from fhir_mappings.resolve import day_of
from fhir_mappings.tables import ICD10CM_SYSTEM, load_json

#: The scrub rule code every tenant rule's issue carries (``details.coding[0]``); the rule's own
#: id follows in a second coding (system ``vocabulary.TENANT_RULE``).
RULE_CODE = "TENANT-RULE"
LIBRARY_TYPE = "http://terminology.hl7.org/CodeSystem/library-type"
CONTENT_TYPE = "application/json"
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")
_MODIFIER_FIELDS = ("withModifiers", "withoutModifiers")

Problem = tuple[list[str], str]  # (FHIRPath expressions, what is wrong)


@dataclass(frozen=True)
class TenantRule:
    """One rule of a pack, read from its JSON."""

    id: str
    text: str
    severity: str
    codes: frozenset[str]
    with_codes: frozenset[str] = frozenset()
    with_modifiers: frozenset[str] = frozenset()
    without_modifiers: frozenset[str] = frozenset()
    diagnoses: tuple[str, ...] = ()
    places: frozenset[str] = frozenset()
    profiles: frozenset[str] = frozenset()
    element: str = "item"
    source: str | None = None

    def hits(self, it: Item, claim_items: Sequence[Item], claim_dx: Sequence[str], profile: PayerProfile) -> bool:
        """Whether the claim line ``it`` is one the rule is about."""
        if it.code not in self.codes:
            return False
        mods = set(it.modifiers)
        if self.with_modifiers and not mods & self.with_modifiers:
            return False
        if self.without_modifiers and mods & self.without_modifiers:
            return False
        if self.with_codes and not any(o.index != it.index and o.day == it.day and o.code in self.with_codes
                                       for o in claim_items):
            return False
        if self.diagnoses and not any(dx.startswith(p) for dx in claim_dx for p in self.diagnoses):
            return False
        if self.places and _place_of(it) not in self.places:
            return False
        return not self.profiles or profile.name in self.profiles


@dataclass(frozen=True)
class RulePack:
    """One version of a practice's rules for one payer (a stored Library)."""

    library: str  # Library/<id>
    payer: str  # Organization/<id>
    version: int
    start: date
    end: date | None
    rules: tuple[TenantRule, ...]

    def in_force(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    @cached_property
    def by_code(self) -> dict[str, list[tuple[int, TenantRule]]]:
        """(position, rule) per procedure code: a line is compared with its code's rules only."""
        out: dict[str, list[tuple[int, TenantRule]]] = {}
        for n, rule in enumerate(self.rules):
            for code in rule.codes:
                out.setdefault(code, []).append((n, rule))
        return out


# -- the schema -------------------------------------------------------------------------------

@cache
def schema() -> dict[str, Any]:
    return load_json("tenant_rules.json")  # type: ignore[no-any-return]


def _field_problems(value: Any, spec: dict[str, Any], where: str) -> list[str]:
    """What is wrong with one value against its field spec (``where`` is its JSON path)."""
    kind = spec["type"]
    if kind == "string":
        if not isinstance(value, str) or not value.strip():
            return [f"{where} must be a non-empty string"]
        if "enum" in spec and value not in spec["enum"]:
            return [f"{where} is {value!r}; expected one of {', '.join(spec['enum'])}"]
        if "pattern" in spec and not re.match(spec["pattern"], value):
            return [f"{where} {value!r} is not well-formed"]
        if len(value) > spec.get("maxLength", 10_000):
            return [f"{where} is longer than {spec['maxLength']} characters"]
        return []
    if kind == "object":
        return [] if isinstance(value, dict) else [f"{where} must be a JSON object"]
    if not isinstance(value, list) or not value:
        return [f"{where} must be a non-empty list"]
    item = spec["items"]
    allowed = profile_names() if item.get("enum_from") == "profiles" else None
    out = []
    for n, v in enumerate(value):
        if not isinstance(v, str):
            out.append(f"{where}[{n}] must be a string")
        elif allowed is not None and v not in allowed:
            out.append(f"{where}[{n}] is {v!r}; expected one of {', '.join(allowed)}")
        elif "pattern" in item and not re.match(item["pattern"], v):
            out.append(f"{where}[{n}] {v!r} is not well-formed")
    return out


def _object_problems(value: dict[str, Any], part: dict[str, Any], where: str) -> list[tuple[str, str]]:
    """(JSON path, text) for every problem of a rule or its ``match`` against the schema."""
    out: list[tuple[str, str]] = []
    for key in part["required"]:
        if key not in value:
            out.append((f"{where}.{key}", f"{where}.{key} is required"))
    for key, v in value.items():
        spec = part["fields"].get(key)
        if spec is None:
            out.append((f"{where}.{key}", f"{where}.{key} is not a rule field; known: {', '.join(part['fields'])}"))
            continue
        out.extend((f"{where}.{key}", text) for text in _field_problems(v, spec, f"{where}.{key}"))
    return out


def rule_problems(rule: Any, where: str = "rule") -> list[tuple[str, str]]:
    """(JSON path, text) for every problem of one rule (empty: the rule is valid)."""
    if not isinstance(rule, dict):
        return [(where, f"{where} must be a JSON object")]
    out = _object_problems(rule, schema()["rule"], where)
    if isinstance(rule.get("match"), dict):
        out.extend(_object_problems(rule["match"], schema()["match"], f"{where}.match"))
    return out


def rules_problems(data: Any, where: str = "") -> list[tuple[str, str]]:
    """(JSON path, text) for every problem of a rule pack's JSON ``{"rules": [...]}``."""
    if not isinstance(data, dict) or set(data) - {"rules"} or not isinstance(data.get("rules"), list):
        return [(where or "rules", 'the rule pack must be a JSON object {"rules": [...]} (a list of rules)')]
    rules = data["rules"]
    if len(rules) > schema()["max_rules"]:
        return [(f"{where}rules", f"a rule pack holds at most {schema()['max_rules']} rules")]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for n, rule in enumerate(rules):
        out.extend(rule_problems(rule, f"{where}rules[{n}]"))
        rid = rule.get("id") if isinstance(rule, dict) else None
        if isinstance(rid, str):
            if rid in seen:
                out.append((f"{where}rules[{n}].id", f"{where}rules[{n}].id {rid!r} is used by another rule of the pack"))
            seen.add(rid)
    return out


# -- the Library ------------------------------------------------------------------------------

def payer_of(library: dict[str, Any]) -> str | None:
    """The payer reference (``Organization/<id>``) of a rule pack Library."""
    for ctx in library.get("useContext") or ():
        coding = (ctx.get("code") or {})
        if coding.get("system") == vocabulary.USAGE_CONTEXT and coding.get("code") == "payer":
            return ((ctx.get("valueReference") or {}).get("reference")) or None
    return None


def decode_content(library: dict[str, Any]) -> Any:
    """The JSON of ``content[0].data``; ValueError when it is not base64 JSON."""
    raw = ((library.get("content") or [{}])[0] or {}).get("data") or ""
    try:
        return json.loads(base64.b64decode("".join(str(raw).split()), validate=True))  # base64Binary may wrap
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None


def encode_content(rules: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A ``content`` Attachment holding ``rules`` as the pack's JSON."""
    data = json.dumps({"rules": list(rules)}, separators=(",", ":"), sort_keys=False).encode()
    return {"contentType": CONTENT_TYPE, "data": base64.b64encode(data).decode()}


def library_problems(library: dict[str, Any]) -> list[Problem]:
    """(FHIRPath expressions, text) for every reason ``library`` is not a usable rule pack (empty: it is).

    A problem inside the rule JSON names the element holding it, ``Library.content[0].data``,
    followed by a second expression that continues into the decoded JSON (``…data.rules[0].severity``)."""
    out: list[Problem] = []
    if not any(c.get("system") == LIBRARY_TYPE and c.get("code") == "logic-library"
               for c in (library.get("type") or {}).get("coding") or ()):
        out.append((["Library.type"], f"a rule pack's type is {LIBRARY_TYPE}|logic-library"))
    if not _VERSION.match(str(library.get("version") or "")):
        out.append((["Library.version"], "a rule pack's version is a whole number (1, 2, …) that grows with each version"))
    if day_of((library.get("effectivePeriod") or {}).get("start")) is None:
        out.append((["Library.effectivePeriod.start"], "a rule pack needs the first date of service it applies to "
                    "(effectivePeriod.start)"))
    end = day_of((library.get("effectivePeriod") or {}).get("end"))
    start = day_of((library.get("effectivePeriod") or {}).get("start"))
    if end and start and end < start:
        out.append((["Library.effectivePeriod.end"], "effectivePeriod ends before it starts"))
    payer = payer_of(library)
    if not payer or not payer.startswith("Organization/"):
        out.append((["Library.useContext"], "name the payer: a useContext with code "
                    f"{vocabulary.USAGE_CONTEXT}|payer and valueReference Organization/<id>"))
    content = library.get("content") or []
    if len(content) != 1 or (content[0] or {}).get("contentType") != CONTENT_TYPE:
        out.append((["Library.content"], f"a rule pack has one content, of type {CONTENT_TYPE}, holding the rules"))
        return out
    try:
        data = decode_content(library)
    except ValueError:
        out.append((["Library.content[0].data"], "content[0].data must be base64 of the rule pack's JSON"))
        return out
    base = "Library.content[0].data"
    out.extend(([base, f"{base}.{path}"], text) for path, text in rules_problems(data))
    return out


def read_pack(library: dict[str, Any]) -> RulePack:
    """The pack of a stored (valid) rule pack Library."""
    period = library.get("effectivePeriod") or {}
    rules = tuple(_rule(r) for r in decode_content(library)["rules"])
    return RulePack(f"Library/{library.get('id')}", payer_of(library) or "", int(library["version"]),
                    day_of(period.get("start")) or date.min, day_of(period.get("end")), rules)


def _rule(raw: dict[str, Any]) -> TenantRule:
    m = raw["match"]
    looks_at_modifiers = any(k in m for k in _MODIFIER_FIELDS)
    return TenantRule(
        raw["id"], raw["text"], raw["severity"], frozenset(m["codes"]),
        frozenset(m.get("withCodes", ())), frozenset(m.get("withModifiers", ())),
        frozenset(m.get("withoutModifiers", ())), tuple(_dx(d) for d in m.get("diagnoses", ())),
        frozenset(m.get("placesOfService", ())), frozenset(m.get("profiles", ())),
        raw.get("element") or ("item.modifier" if looks_at_modifiers else "item"), raw.get("source"))


def effective_pack(packs: Iterable[RulePack], payer: str | None, day: date) -> RulePack | None:
    """The pack for a claim to ``payer`` on ``day``: in force that day, the newest start (then the
    highest version) winning."""
    mine = [p for p in packs if payer and p.payer == payer and p.in_force(day)]
    return max(mine, key=lambda p: (p.start, p.version)) if mine else None


# -- scrubbing ------------------------------------------------------------------------------

def _dx(code: str) -> str:
    return code.replace(".", "").upper()


def _place_of(it: Item) -> str | None:
    return next((c.get("code") for c in (it.raw.get("locationCodeableConcept") or {}).get("coding") or ()), None)


def claim_day(claim: dict[str, Any], items: Sequence[Item]) -> date | None:
    """The claim's first date of service (the day whose rule pack applies)."""
    days = [it.day for it in items if it.day]
    return min(days) if days else day_of((claim.get("billablePeriod") or {}).get("start"))


def tenant_issues(claim: dict[str, Any], profile: PayerProfile, packs: Sequence[RulePack],
                  items: Sequence[Item] | None = None) -> list[dict[str, Any]]:
    """The OperationOutcome issues of the practice's rules for ``claim``: the pack of the claim's
    payer (``Claim.insurer``) in force on its first date of service. ``items``: the claim's
    items when the caller has read them already."""
    payer = (claim.get("insurer") or {}).get("reference")
    mine = [p for p in packs if p.payer == payer]
    if not mine:  # the common case: no rules for this payer, nothing more to read
        return []
    items = read_items(claim) if items is None else items
    day = claim_day(claim, items)
    pack = effective_pack(mine, payer, day) if day else None
    if pack is None:
        return []
    dx = [_dx(c.get("code") or "") for d in claim.get("diagnosis") or ()
          for c in (d.get("diagnosisCodeableConcept") or {}).get("coding") or () if c.get("system") == ICD10CM_SYSTEM]
    # the pack's order: rule by rule, then line by line
    hits = sorted((n, it.index, rule, it) for it in items for n, rule in pack.by_code.get(it.code or "", ())
                  if rule.hits(it, items, dx, profile))
    out = []
    for _, _, rule, it in hits:
        where = it.path + rule.element[len("item"):]
        found = issue(rule.severity, "business-rule", RULE_CODE, "A rule of the practice for this payer",
                      f"{rule.text} (line {it.index + 1}: {it.code} on {it.day})", [where])
        found["details"]["coding"].append({"system": vocabulary.TENANT_RULE, "code": rule.id,
                                           "display": rule.text[:200]})
        found["diagnostics"] = f"{rule.text} — rule {rule.id} of {pack.library} version {pack.version}"
        out.append(found)
    return out


def rule_pack_library(payer: str, version: int, start: date, rules: Sequence[dict[str, Any]], *,
                      title: str | None = None) -> dict[str, Any]:
    """A new rule pack Library (no id) for ``payer`` holding ``rules``, in force from ``start``."""
    lib: dict[str, Any] = {
        "resourceType": "Library",
        "meta": {"profile": [vocabulary.PAYER_RULE_PACK]},
        "url": f"{vocabulary.RULE_PACKS}/{payer.split('/', 1)[-1]}",
        "version": str(version),
        "name": "PayerRules",
        "status": "active",
        "type": {"coding": [{"system": LIBRARY_TYPE, "code": "logic-library"}]},
        "effectivePeriod": {"start": start.isoformat()},
        "useContext": [{"code": {"system": vocabulary.USAGE_CONTEXT, "code": "payer"},
                        "valueReference": {"reference": payer}}],
        "content": [encode_content(rules)],
    }
    if title:
        lib["title"] = title
    return lib
