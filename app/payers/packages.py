"""What an adapter is handed: a Claim or CoverageEligibilityRequest with everything it points at,
read from the tenant's store (the PAS rule, reference §1.1: every referenced resource, once)."""
from __future__ import annotations

from typing import Any

import orjson

from app.claims.gather import references_under
from app.fhir.extract import reference_target
from app.fhir.store import Reader
from app.payers.lifecycle import patient_control_number
from payer_adapters.base import ClaimPackage, EligibilityPackage

# Elements whose references an adapter needs resolved (two levels: PractitionerRole → Practitioner).
FOLLOW = ("patient", "beneficiary", "subscriber", "payor", "insurer", "provider", "coverage", "condition",
          "diagnosisReference", "practitioner", "organization", "facility", "referral", "requester", "enterer",
          "location", "valueReference")



def referenced(reader: Reader, root: dict[str, Any], depth: int = 3) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    frontier = [root]
    for _ in range(depth):
        nxt = []
        for ref in {r for res in frontier for r in references_under(res, FOLLOW)}:
            target = reference_target(ref)
            if not target or f"{target[0]}/{target[1]}" in found:
                continue
            current = reader.current(*target)
            if current and not current.deleted and current.content:
                res = orjson.loads(current.content)
                found[f"{target[0]}/{target[1]}"] = res
                nxt.append(res)
        frontier = nxt
    return list(found.values())


def claim_package(reader: Reader, claim: dict[str, Any]) -> ClaimPackage:
    pcn = patient_control_number(claim) or claim["id"]
    return ClaimPackage(claim=claim, resources=referenced(reader, claim), patient_control_number=pcn)


def eligibility_package(reader: Reader, request: dict[str, Any]) -> EligibilityPackage:
    return EligibilityPackage(request=request, resources=referenced(reader, request))
