"""Collect from the store everything ``fhir_mappings`` needs to bill one Encounter.

The mapping is pure and takes a list of resources; this module decides which resources of the
tenant belong to the visit: the Encounter, its Procedures and their performers, the patient's
Coverages and payers, CarePlans, Conditions, referrals, authorizations, and this year's earlier
claims and remittances (for the KX threshold), the payer's eligibility answers (visit limits,
coverage in force), and the practice's fee schedule for the codes
billed (its active ChargeItemDefinitions for the visit's codes and those of the earlier claims).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from app.fhir.extract import reference_target
from app.fhir.queries import find_resources, references_under
from app.fhir.registry import registry
from app.fhir.store import Reader

# (type, search parameter pointing at the patient)
PATIENT_LINKED = (
    ("Coverage", "beneficiary"), ("CarePlan", "patient"), ("Condition", "patient"),
    ("ServiceRequest", "patient"), ("Claim", "patient"), ("ExplanationOfBenefit", "patient"),
    ("ClaimResponse", "patient"), ("DocumentReference", "patient"), ("CoverageEligibilityResponse", "patient"),
)
BILLING_HISTORY = ("Claim", "ExplanationOfBenefit", "ClaimResponse", "CoverageEligibilityResponse")
NOT_FOLLOWED = (*BILLING_HISTORY, "ChargeItemDefinition")
# Shared by most visits of a practice: read once per transaction (``Unit.memo``).
PRACTICE_TYPES = ("Organization", "Practitioner", "PractitionerRole", "Location")
# Elements whose references are followed one level (performers, payers, certifying physicians).
FOLLOW = ("performer", "author", "payor", "serviceProvider", "requester", "practitioner", "organization",
          "actor", "individual", "provider", "insurer")


def gather_encounter(reader: Reader, encounter_id: str) -> list[dict[str, Any]]:
    """All resources of the tenant relevant to billing ``Encounter/encounter_id`` (it must exist)."""
    return gather_visit(reader, encounter_id)[0]


def prefetch_visits(reader: Reader, encounter_ids: list[str]) -> None:
    """Read the Encounters of a batch of visits, and their patients, in two statements for the
    whole batch, into the transaction's memo (``Unit.memo``, which drops an entry when the
    transaction writes that resource): each visit's gathering then reads neither again. Only
    these two: what else a visit links to (the patient's earlier claims, for one) changes as
    the batch writes claims, and is read per visit. Not for a caller whose reads are filtered
    (``Reader.read`` applies the filters)."""
    memo: dict[Any, Any] | None = getattr(reader, "memo", None)
    if memo is None or not all(reader.ts.access("r", t).unrestricted for t in ("Encounter", "Patient")):
        return
    patients = []
    for (rtype, rid), version in reader.current_many([("Encounter", e) for e in encounter_ids]).items():
        if not version.deleted:
            encounter = memo[("resource", rtype, rid)] = version.resource()
            subject = reference_target((encounter.get("subject") or {}).get("reference", ""))
            if subject and subject[0] == "Patient":
                patients.append(subject)
    for key, version in reader.current_many(patients).items():
        memo[("resource", *key)] = None if version.deleted else version.resource()


def gather_visit(reader: Reader, encounter_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(what ``gather_encounter`` returns, the claims already billing this Encounter)."""
    memo: dict[Any, Any] = getattr(reader, "memo", {})
    encounter = memo.get(("resource", "Encounter", encounter_id)) or reader.read("Encounter", encounter_id).resource()
    found: dict[str, dict[str, Any]] = {f"Encounter/{encounter_id}": encounter}
    subject = reference_target((encounter.get("subject") or {}).get("reference", ""))
    pid = subject[1] if subject and subject[0] == "Patient" else None
    linked, own_claims = _linked(reader, encounter_id, pid)
    for res in linked:
        if res["resourceType"] == "Claim" and _bills_encounter(res, encounter_id):
            continue  # the claim being (re)generated is not a prior claim
        found[f"{res['resourceType']}/{res['id']}"] = res
    for res in fee_schedule(reader, _codes(found.values())):
        found[f"ChargeItemDefinition/{res['id']}"] = res
    wanted = []
    # References are followed from the visit's record, not from past billing (prior claims and
    # remittances are read for their amounts; what they point at is the practice's own).
    # The fee schedule's definitions point at nothing the claim needs (their payers are named in
    # extensions): not walked either.
    record = [r for r in found.values() if r.get("resourceType") not in NOT_FOLLOWED]
    for ref in list(references_under(record, FOLLOW)) + list(references_under(encounter, ("subject",))):
        target = reference_target(ref)
        if target and f"{target[0]}/{target[1]}" not in found and target[0] in registry().types:
            wanted.append(target)
    missing = [t for t in wanted if ("resource", *t) not in memo]
    for key, version in reader.current_many(missing).items():
        resource = None if version.deleted else orjson.loads(version.content or "{}")
        if key[0] in PRACTICE_TYPES:
            memo[("resource", *key)] = resource
        if resource is not None:
            found[f"{key[0]}/{key[1]}"] = resource
    for key in wanted:
        if memo.get(("resource", *key)) is not None:
            found[f"{key[0]}/{key[1]}"] = memo[("resource", *key)]
    return list(found.values()), own_claims


def fee_schedule(reader: Reader, codes: Iterable[str]) -> list[dict[str, Any]]:
    """The tenant's active ChargeItemDefinitions for ``codes`` (every version: the mapping picks
    the one in force on each line's date). One search by code for the codes not yet read in this
    transaction (``Unit.memo``: a batch of generations reads each code's fees once)."""
    memo: dict[Any, Any] = getattr(reader, "memo", {})
    # a fee written in this transaction makes what was read before stale
    stamp = sum(1 for _, v in getattr(reader, "written", ()) if v.type == "ChargeItemDefinition")
    wanted = sorted({c for c in codes if c})
    missing = [c for c in wanted if ("fees", c, stamp) not in memo]
    if missing:
        escaped = ",".join("".join("\\" + ch if ch in ",|$\\" else ch for ch in c) for c in missing)
        found: dict[str, list[dict[str, Any]]] = {c: [] for c in missing}
        for res in find_resources(reader, "ChargeItemDefinition", [("code", escaped), ("status", "active")]):
            for coding in (res.get("code") or {}).get("coding") or ():
                if coding.get("code") in found:
                    found[coding["code"]].append(res)
        for code, fees in found.items():
            memo[("fees", code, stamp)] = fees
    out: dict[str, dict[str, Any]] = {}
    for code in wanted:
        for res in memo.get(("fees", code, stamp), ()):
            out[res["id"]] = res
    return list(out.values())


def _codes(resources: Iterable[dict[str, Any]]) -> set[str]:
    """The codes a claim of the visit may bill: its Procedures' and the earlier claims' (KX)."""
    out: set[str] = set()
    for res in resources:
        if res.get("resourceType") == "Procedure":
            out.update(c.get("code") or "" for c in (res.get("code") or {}).get("coding") or ())
        elif res.get("resourceType") == "Claim":
            for item in res.get("item") or ():
                out.update(c.get("code") or "" for c in (item.get("productOrService") or {}).get("coding") or ())
    return out


def _linked(reader: Reader, encounter_id: str, patient_id: str | None) -> tuple[list[dict[str, Any]],
                                                                                  list[dict[str, Any]]]:
    """(the visit's Procedures and the patient's linked resources, the Encounter's claims): one
    statement when the caller may search them all, else one search per type (which applies
    the caller's filters)."""
    links = [("Procedure", "encounter", "Encounter", encounter_id), ("Claim", "encounter", "Encounter", encounter_id)]
    if patient_id:
        links += [(rtype, param, "Patient", patient_id) for rtype, param in PATIENT_LINKED]
    versions = reader.referencing(links)
    if versions is None:
        out = find_resources(reader, "Procedure", [("encounter", f"Encounter/{encounter_id}")])
        if patient_id:
            for rtype, param in PATIENT_LINKED:
                out += find_resources(reader, rtype, [(param, f"Patient/{patient_id}")])
        return out, claims_for_encounter(reader, encounter_id)
    out = [orjson.loads(v.content) for v in versions if v.content]
    return out, [r for r in out if r["resourceType"] == "Claim" and _bills_encounter(r, encounter_id)]


def _bills_encounter(claim: dict[str, Any], encounter_id: str) -> bool:
    for item in claim.get("item") or []:
        for ref in item.get("encounter") or []:
            if (reference_target(ref.get("reference", "")) or ("", ""))[1] == encounter_id:
                return True
    return False


def claims_for_encounter(reader: Reader, encounter_id: str) -> list[dict[str, Any]]:
    return find_resources(reader, "Claim", [("encounter", f"Encounter/{encounter_id}")])
