"""Reading the FHIR input of the encoders: resolving references inside a Bundle and picking
identifiers, codes and names. Works on plain ``dict`` resources (R4 JSON)."""
from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterable, Mapping

from payer_adapters.x12.errors import EncodeError

Resource = dict[str, Any]
#: What the encoders take: a Bundle, or the resources themselves (one or a list).
Input = Mapping[str, Any] | Iterable[Resource]

NPI = "http://hl7.org/fhir/sid/us-npi"
TIN = "urn:oid:2.16.840.1.113883.4.4"
NUCC = "http://nucc.org/provider-taxonomy"
CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


class ResourceIndex:
    """Finds resources by ``Type/id`` or by ``fullUrl`` (also ``urn:uuid:``) in a Bundle."""

    def __init__(self, resources: Iterable[Resource], full_urls: Mapping[str, Resource] | None = None):
        self._by_ref: dict[str, Resource] = dict(full_urls or {})
        self.resources = list(resources)
        for r in self.resources:
            if r.get("id"):
                self._by_ref[f"{r['resourceType']}/{r['id']}"] = r

    @classmethod
    def from_input(cls, data: Input) -> "ResourceIndex":
        if isinstance(data, Mapping) and data.get("resourceType") == "Bundle":
            entries = data.get("entry") or []
            res = [e["resource"] for e in entries if "resource" in e]
            urls = {e["fullUrl"]: e["resource"] for e in entries if e.get("fullUrl") and "resource" in e}
            return cls(res, urls)
        if isinstance(data, Mapping):
            return cls([dict(data)])
        return cls(list(data))

    def of_type(self, rtype: str) -> list[Resource]:
        return [r for r in self.resources if r.get("resourceType") == rtype]

    def get(self, ref: Mapping[str, Any] | None, *, what: str, required: bool = True) -> Resource | None:
        if ref and "reference" in ref:
            r = self._by_ref.get(ref["reference"])
            if r is None and "/" in ref["reference"]:
                r = self._by_ref.get("/".join(ref["reference"].split("/")[-2:]))
            if r is not None:
                return r
        if required:
            raise EncodeError(f"{what} is not in the input bundle")
        return None


def identifier(res: Mapping[str, Any] | None, system: str) -> str | None:
    for ident in (res or {}).get("identifier") or []:
        if ident.get("system") == system and ident.get("value"):
            return str(ident["value"])
    return None


def codes(concept: Mapping[str, Any] | None, system: str | None = None) -> list[str]:
    return [c["code"] for c in (concept or {}).get("coding") or []
            if c.get("code") and (system is None or c.get("system") == system)]


def code(concept: Mapping[str, Any] | None, system: str | None = None) -> str | None:
    found = codes(concept, system)
    return found[0] if found else None


def has_code(concepts: Iterable[Mapping[str, Any]] | Mapping[str, Any] | None, value: str,
             system: str | None = None) -> bool:
    if concepts is None:
        return False
    if isinstance(concepts, Mapping):
        concepts = [concepts]
    return any(value in codes(c, system) for c in concepts)


def extension(res: Mapping[str, Any], url: str) -> Any:
    for ext in res.get("extension") or []:
        if ext.get("url") == url:
            for k, v in ext.items():
                if k.startswith("value"):
                    return v
    return None


def human_name(res: Mapping[str, Any]) -> tuple[str, str, str]:
    """(family, first given, middle) of the official (else first) name."""
    names = res.get("name") or []
    if isinstance(names, str):  # Organization.name
        return names, "", ""
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    given = name.get("given") or []
    return name.get("family", ""), given[0] if given else "", given[1] if len(given) > 1 else ""


_PO_BOX = re.compile(r"\b(P\.?\s*O\.?\s*BOX|POST\s+OFFICE\s+BOX|LOCK\s*BOX|POB)\b", re.I)


def is_po_box(address: Mapping[str, Any]) -> bool:
    return any(_PO_BOX.search(line) for line in address.get("line") or [])


def decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def fmt_amount(value: Any) -> str:
    """X12 R: no trailing zeros or point (``150``, ``43.1``, ``43.12``)."""
    d = decimal(value).quantize(Decimal("0.01"))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def fmt_quantity(value: Any) -> str:
    d = decimal(value)
    text = format(d.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def d8(iso: str | None) -> str:
    """FHIR date/dateTime → CCYYMMDD."""
    if not iso or len(iso) < 10:
        raise EncodeError("a full date (YYYY-MM-DD) is required")
    return iso[:10].replace("-", "")
