"""One resolver for every identifier the product reads: payer id, member id, NPI, TIN, patient
control number, trace number, payer claim number and the workers' comp claim number.

The mapper, the X12 encoders, the payer adapters and the server all ask this module, so a payer
Organization identified the CARIN Blue Button way, or an external Claim carrying only its
sender's own identifier, is read the same way everywhere. Which forms are accepted, and in which
order, is data (``data/identifiers.json``, with sources); ``table_markdown()`` renders it for
PROFILE.md. Pure: plain dicts in, plain values out.

Of ``fhir_mappings`` this module imports only ``vocabulary`` and reads only its own data file, so
code outside the mapper (the payer adapters) can use it without the rest of the package.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import fhir_mappings.vocabulary as vocabulary

PAYER_ID = "payer-id"
MEMBER_ID = "member-id"
NPI = "npi"
TIN = "tin"
PATIENT_CONTROL_NUMBER = "patient-control-number"
TRACE_NUMBER = "trace-number"
PAYER_CLAIM_NUMBER = "payer-claim-number"
PC_CLAIM_NUMBER = "property-casualty-claim-number"


@dataclass(frozen=True)
class Form:
    """One accepted way of carrying an identifier (exactly one of system, type, element, own)."""

    system: str | None = None
    type_system: str | None = None
    type_code: str | None = None
    element: str | None = None
    own: bool = False
    source: str = ""

    def describe(self) -> str:
        if self.system:
            return f"system `{self.system}`"
        if self.type_code:
            return f"type `{(self.type_system or '').rstrip('/').rsplit('/', 1)[-1]}#{self.type_code}`"
        if self.element:
            return f"element `{self.element}`"
        return "its own identifier, any system, when the value fits"


@dataclass(frozen=True)
class Kind:
    kind: str
    name: str
    x12: str
    read_from: str
    forms: tuple[Form, ...]
    fits: re.Pattern[str] | None
    fits_text: str
    not_accepted: str

    def fits_value(self, value: str) -> bool:
        """Whether ``value`` fits the X12 element (kinds without a pattern accept any value)."""
        return self.fits is None or self.fits.fullmatch(value) is not None


@dataclass(frozen=True)
class Resolved:
    """A value found, the form that matched and where it sat (``identifier[2]``, ``subscriberId``)."""

    value: str
    form: Form
    path: str


@cache
def _data() -> Any:
    """``data/identifiers.json``, parsed once per process."""
    return json.loads(resources.files(__package__).joinpath("data", "identifiers.json").read_text(encoding="utf-8"))


@cache
def kinds() -> dict[str, Kind]:
    data = _data()
    out: dict[str, Kind] = {}
    for k in data["kinds"]:
        forms = []
        for f in k["forms"]:
            t = f.get("type") or {}
            forms.append(Form(system=f.get("system"), type_system=t.get("system"), type_code=t.get("code"),
                              element=f.get("element"), own=bool(f.get("own")), source=f["source"]))
        fits = k.get("fits") or {}
        out[k["kind"]] = Kind(k["kind"], k["name"], k["x12"], k["read_from"], tuple(forms),
                              re.compile(fits["pattern"]) if fits else None, fits.get("text", ""),
                              k.get("not_accepted", ""))
    return out


@cache
def _claimed() -> tuple[str, frozenset[str], frozenset[tuple[str, str]]]:
    """What no 'own' form may take: the product's systems and every system or type listed."""
    systems = frozenset(f.system for k in kinds().values() for f in k.forms if f.system)
    types = frozenset((f.type_system, f.type_code) for k in kinds().values() for f in k.forms
                      if f.type_code and f.type_system)
    return vocabulary.SID, systems, types


def _identifiers(holder: Mapping[str, Any]) -> list[tuple[int | None, Mapping[str, Any]]]:
    """(index, Identifier) pairs: a resource's list, or a Reference's single identifier."""
    found = holder.get("identifier")
    if isinstance(found, Mapping):
        return [(None, found)]
    if isinstance(found, list):
        return [(i, x) for i, x in enumerate(found) if isinstance(x, Mapping)]
    return []


def _has_type(ident: Mapping[str, Any], system: str | None, code: str | None) -> bool:
    codings = (ident.get("type") or {}).get("coding") or []
    return any(isinstance(c, Mapping) and c.get("system") == system and c.get("code") == code for c in codings)


def _is_claimed(ident: Mapping[str, Any]) -> bool:
    prefix, systems, types = _claimed()
    system = str(ident.get("system") or "")
    if system.startswith(prefix) or system in systems:
        return True
    codings = (ident.get("type") or {}).get("coding") or []
    return any(isinstance(c, Mapping) and (c.get("system"), c.get("code")) in types for c in codings)


def _matches(form: Form, ident: Mapping[str, Any], kind: Kind) -> bool:
    if form.system:
        return ident.get("system") == form.system
    if form.type_code:
        return _has_type(ident, form.type_system, form.type_code)
    if form.own:
        return ident.get("use") != "old" and not _is_claimed(ident) and kind.fits_value(str(ident.get("value")))
    return False


def _candidates(kind: Kind, holder: Mapping[str, Any]) -> Iterator[Resolved]:
    idents = _identifiers(holder)
    for form in kind.forms:
        if form.element:
            value = holder.get(form.element)
            if isinstance(value, str) and value.strip():
                yield Resolved(value, form, form.element)
            continue
        for i, ident in idents:
            value = ident.get("value")
            if isinstance(value, str) and value.strip() and _matches(form, ident, kind):
                yield Resolved(value, form, "identifier" if i is None else f"identifier[{i}]")


def resolve(kind: str, *holders: Mapping[str, Any] | None) -> Resolved | None:
    """The ``kind`` identifier of the first holder (resource or Reference) that carries one.

    Holders are read in the order given (callers pass them in the order PROFILE.md documents,
    e.g. the payer Organization before ``Claim.insurer``); within a holder the forms of
    ``data/identifiers.json`` are tried in order. ``KeyError`` for an unknown kind.
    """
    spec = kinds()[kind]
    for holder in holders:
        if isinstance(holder, Mapping):
            for hit in _candidates(spec, holder):
                return hit
    return None


def value(kind: str, *holders: Mapping[str, Any] | None) -> str | None:
    """``resolve(...).value`` or None."""
    hit = resolve(kind, *holders)
    return hit.value if hit else None


def fits(kind: str, value: str) -> bool:
    """Whether ``value`` fits the X12 element of ``kind`` (CLM01, TRN02...)."""
    return kinds()[kind].fits_value(value)


def accepted(kind: str) -> str:
    """A one-line list of the accepted forms, for error messages."""
    spec = kinds()[kind]
    return "; ".join(f.describe().replace("`", "") for f in spec.forms) + (
        f" ({spec.fits_text})" if spec.fits else "")


# -- the identifiers by name (what callers use) -----------------------------------------------

def payer_id(organization: Mapping[str, Any] | None, reference: Mapping[str, Any] | None = None) -> str | None:
    """The payer id of the payer Organization, else of the Reference (``Claim.insurer``)."""
    return value(PAYER_ID, organization, reference)


def member_id(coverage: Mapping[str, Any] | None) -> str | None:
    return value(MEMBER_ID, coverage)


def npi(resource: Mapping[str, Any] | None, reference: Mapping[str, Any] | None = None) -> str | None:
    """The NPI of an Organization, Practitioner or PractitionerRole, else of the Reference to it."""
    return value(NPI, resource, reference)


def tin(organization: Mapping[str, Any] | None) -> str | None:
    return value(TIN, organization)


def patient_control_number(claim: Mapping[str, Any] | None) -> str | None:
    return value(PATIENT_CONTROL_NUMBER, claim)


def trace_number(request: Mapping[str, Any] | None) -> str | None:
    return value(TRACE_NUMBER, request)


def payer_claim_number(*holders: Mapping[str, Any] | None) -> str | None:
    """Of a ClaimResponse / ExplanationOfBenefit, or of an Identifier (``Claim.related.reference``)."""
    return value(PAYER_CLAIM_NUMBER, *(_as_holder(h) for h in holders))


def pc_claim_number(*holders: Mapping[str, Any] | None) -> str | None:
    """The workers' comp claim number of a Coverage (or ``Claim.insurance``)."""
    return value(PC_CLAIM_NUMBER, *holders)


def _as_holder(h: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """An Identifier given on its own (it has a value, no identifier) is read as a Reference's."""
    if isinstance(h, Mapping) and "identifier" not in h and "value" in h:
        return {"identifier": h}
    return h


def table_markdown() -> str:
    """The identifier table of PROFILE.md (a test keeps the two in step)."""
    rows = ["| identifier | X12 / JSON | read from | accepted, in this order | not accepted |",
            "|---|---|---|---|---|"]
    for k in kinds().values():
        forms = "<br>".join(f"{n}. {f.describe()}" + (f" ({k.fits_text})" if f.own else "") + f" [{f.source}]"
                            for n, f in enumerate(k.forms, start=1))
        rows.append(f"| {k.name} | {k.x12} | {k.read_from} | {forms} | {k.not_accepted or '—'} |")
    return "\n".join(rows)


def sources_markdown() -> str:
    return "\n".join(f"* [{tag}] {text}" for tag, text in _data()["sources"].items())


def npi_is_valid(npi: str) -> bool:
    """True when ``npi`` is ten digits and its last digit is the Luhn check digit (ISO/IEC 7812)
    over the prefix 80840 and the first nine digits."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    # Double every second digit counting from the right of the payload (the check digit is excluded).
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


if __name__ == "__main__":  # python -m fhir_mappings.identifiers > the table for PROFILE.md
    print(table_markdown())
    print()
    print(sources_markdown())
