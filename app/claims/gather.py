"""Collect from the store everything ``fhir_mappings`` needs to bill one Encounter.

The mapping is pure and takes a list of resources; this module decides which resources of the
tenant belong to the visit: the Encounter, its Procedures and their performers, the patient's
Coverages and payers, CarePlans, Conditions, referrals, authorizations, and this year's earlier
claims and remittances (for the KX threshold).
"""
from __future__ import annotations

from typing import Any, Iterable

import orjson

from app.fhir.extract import reference_target
from app.fhir.registry import registry
from app.fhir.search_params import parse_search
from app.fhir.store import Reader

# (type, search parameter pointing at the patient)
PATIENT_LINKED = (
    ("Coverage", "beneficiary"), ("CarePlan", "patient"), ("Condition", "patient"),
    ("ServiceRequest", "patient"), ("Claim", "patient"), ("ExplanationOfBenefit", "patient"),
    ("ClaimResponse", "patient"), ("DocumentReference", "patient"),
)
# Elements whose references are followed one level (performers, payers, certifying physicians).
FOLLOW = ("performer", "author", "payor", "serviceProvider", "requester", "practitioner", "organization",
          "actor", "individual", "provider", "insurer")


def find_resources(reader: Reader, rtype: str, items: list[tuple[str, str]]) -> list[dict[str, Any]]:
    reg = registry()
    query = parse_search(reg.get(rtype), [*items, ("_count", "1000")], registry=reg, max_count=1000)
    query.total = "none"
    return [orjson.loads(v.content) for v in reader.search(query).matches if v.content]


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


def gather_encounter(reader: Reader, encounter_id: str) -> list[dict[str, Any]]:
    """All resources of the tenant relevant to billing ``Encounter/encounter_id`` (it must exist)."""
    encounter = reader.read("Encounter", encounter_id).resource()
    found: dict[str, dict[str, Any]] = {f"Encounter/{encounter_id}": encounter}
    subject = reference_target((encounter.get("subject") or {}).get("reference", ""))
    for proc in find_resources(reader, "Procedure", [("encounter", f"Encounter/{encounter_id}")]):
        found[f"Procedure/{proc['id']}"] = proc
    if subject and subject[0] == "Patient":
        pid = subject[1]
        for rtype, param in PATIENT_LINKED:
            for res in find_resources(reader, rtype, [(param, f"Patient/{pid}")]):
                if rtype == "Claim" and _bills_encounter(res, encounter_id):
                    continue  # the claim being (re)generated is not a prior claim
                found[f"{rtype}/{res['id']}"] = res
    for ref in list(references_under(list(found.values()), FOLLOW)) + list(references_under(encounter, ("subject",))):
        target = reference_target(ref)
        if target and f"{target[0]}/{target[1]}" not in found and target[0] in registry().types:
            current = reader.current(*target)
            if current and not current.deleted:
                found[f"{target[0]}/{target[1]}"] = orjson.loads(current.content or "{}")
    return list(found.values())


def _bills_encounter(claim: dict[str, Any], encounter_id: str) -> bool:
    for item in claim.get("item") or []:
        for ref in item.get("encounter") or []:
            if (reference_target(ref.get("reference", "")) or ("", ""))[1] == encounter_id:
                return True
    return False


def claims_for_encounter(reader: Reader, encounter_id: str) -> list[dict[str, Any]]:
    return find_resources(reader, "Claim", [("encounter", f"Encounter/{encounter_id}")])
