"""What an adapter is handed: a Claim or CoverageEligibilityRequest with everything it points at,
read from the tenant's store (the Da Vinci PAS rule: every resource the request references, once)."""
from __future__ import annotations

from typing import Any

import orjson

from app.fhir.queries import references_under
from app.fhir.extract import reference_target
from app.fhir.store import Reader
from fhir_mappings.identifiers import patient_control_number
from payer_adapters.contract import ClaimPackage, EligibilityPackage

# Elements whose references an adapter needs resolved (two levels: PractitionerRole → Practitioner;
# policyHolder: a workers' comp employer goes in the 837P's 2010BA; claimResponse: a prior payer's
# adjudication on a secondary claim, with its insurer).
FOLLOW = ("patient", "beneficiary", "subscriber", "policyHolder", "payor", "insurer", "provider", "coverage",
          "condition", "diagnosisReference", "practitioner", "organization", "facility", "referral", "requester",
          "enterer", "location", "valueReference", "claimResponse")


def referenced_many(reader: Reader, roots: list[dict[str, Any]], depth: int = 3) -> list[list[dict[str, Any]]]:
    """For each root, every resource it points at (``depth`` levels). All roots are walked
    together, one ``current_many`` per level: a batch of claims shares its practice, payer and
    practitioners, and reads them once."""
    cache: dict[tuple[str, str], dict[str, Any] | None] = {}
    found: list[dict[tuple[str, str], dict[str, Any]]] = [{} for _ in roots]
    frontier: list[list[dict[str, Any]]] = [[root] for root in roots]
    for _ in range(depth):
        wanted: list[list[tuple[str, str]]] = []
        for i, resources in enumerate(frontier):
            keys = []
            for ref in {r for res in resources for r in references_under(res, FOLLOW)}:
                target = reference_target(ref)
                if target and target not in found[i]:
                    keys.append(target)
            wanted.append(keys)
        missing = [k for keys in wanted for k in keys if k not in cache]
        if missing:
            versions = reader.current_many(missing)
            for key in missing:
                v = versions.get(key)
                cache[key] = orjson.loads(v.content) if v and not v.deleted and v.content else None
        frontier = []
        for i, keys in enumerate(wanted):
            nxt = []
            for key in keys:
                res = cache.get(key)
                if res is not None and key not in found[i]:
                    found[i][key] = res
                    nxt.append(res)
            frontier.append(nxt)
    return [list(f.values()) for f in found]


def claim_packages(reader: Reader, claims: list[dict[str, Any]]) -> list[ClaimPackage]:
    return [ClaimPackage(claim=claim, resources=resources,
                         patient_control_number=patient_control_number(claim) or claim["id"])
            for claim, resources in zip(claims, referenced_many(reader, claims))]


def claim_package(reader: Reader, claim: dict[str, Any]) -> ClaimPackage:
    return claim_packages(reader, [claim])[0]


def eligibility_package(reader: Reader, request: dict[str, Any]) -> EligibilityPackage:
    return EligibilityPackage(request=request, resources=referenced_many(reader, [request])[0])
