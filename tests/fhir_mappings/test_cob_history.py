"""A visit's claims to later payers (secondary, tertiary) and their payers' EOBs repeat what the
primary billed: they are not prior claims of the visit and never count toward the KX threshold."""
from __future__ import annotations

from tests.fhir_mappings.helpers import lines, run
from tests.fhir_mappings.mapping_builders import Block, eob, make_encounter_bundle

from fhir_mappings import ClaimInputs
from fhir_mappings.inputs import follows_another_payer


def _secondary_claim() -> dict:
    return {"resourceType": "Claim", "id": "claim-supp", "status": "active", "use": "claim",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "patient": {"reference": "Patient/pat-1"}, "created": "2025-01-20",
            "provider": {"reference": "Organization/org-clinic"}, "insurer": {"reference": "Organization/org-payer"},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": False, "coverage": {"reference": "Coverage/cov-1"},
                           "claimResponse": {"reference": "ClaimResponse/cr-1"}},
                          {"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/cov-1"}}],
            "item": [{"sequence": 1, "servicedDate": "2025-01-08",
                      "productOrService": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97110"}]},
                      "modifier": [{"coding": [{"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                                "code": "GO"}]}],
                      "quantity": {"value": 40}}]}


def test_secondary_claims_and_their_eobs_do_not_count_toward_kx() -> None:
    # The primary's EOB: $1,200 allowed. The supplement's EOB for the same services says $1,160
    # "allowed" too; counted, it would push the visit over the 2025 OT threshold ($2,410).
    supplement_eob = eob("eob-2", "2025-01-08", "97110", "GO", 1160.0)
    supplement_eob["claim"] = {"reference": "Claim/claim-supp"}
    history = [eob("eob-1", "2025-01-06", "97530", "GO", 1200.0), _secondary_claim(), supplement_eob]
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 15), Block("97530", 15, 15)], extra=history)
    inputs = ClaimInputs.from_resources(bundle)
    assert [e.id for e in inputs.prior_claims] == [] and [e.id for e in inputs.eobs] == ["eob-1"]
    claim, _, ids = run(bundle)
    assert lines(claim) == [("97110", ("GO",), 1), ("97530", ("GO",), 1)]
    assert "THER-KX-APPLIED" not in ids


def test_follows_another_payer() -> None:
    assert follows_another_payer(_secondary_claim())
    assert not follows_another_payer({"insurance": [{"sequence": 1, "focal": True}]})
    assert follows_another_payer({"insurance": [{"sequence": 3, "focal": True}]})
