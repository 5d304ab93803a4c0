"""Secondary and tertiary claim bundles for the COB tests: the Medicare OT claim of ``builders``
billed on to a supplemental payer (and a third), each prior payer's adjudication a ClaimResponse
built by the codec from typed 835 records."""
from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from payer_adapters.x12.cob import payment_to_claim_response
from payer_adapters.x12.decode_835 import Adjustment, ClaimPayment, Remittance, ServicePayment

from . import builders as B


def remittance(payment_date: str = "2025-02-03") -> Remittance:
    rem = Remittance(header=None)  # type: ignore[arg-type]  (no envelope: built, not decoded)
    rem.payment_date, rem.trace_number, rem.payer_id = payment_date, "TRACE1", "00952"
    return rem


def svc(code: str, mods: list[str], charge: str, paid: str, control: str, adjustments: list[tuple[str, str, str]],
        units: str = "1", allowed: str | None = None) -> ServicePayment:
    s = ServicePayment("HC", code, mods, D(charge), D(paid), D(units), service_date="2025-01-14",
                       line_control_number=control, allowed=D(allowed) if allowed else None)
    s.adjustments = [Adjustment(g, r, D(a)) for g, r, a in adjustments]
    return s


def medicare_payment() -> ClaimPayment:
    """Medicare's 835 for the OT claim (310.00): 129.36 paid, 82.34 left to the patient."""
    cp = ClaimPayment("PCN20250114A", "1", D("310"), D("129.36"), D("82.34"), "MB", "MCR0001ICN", "11", "1")
    cp.services = [
        svc("97165", ["GO"], "150", "82.80", "A1B2C3D401", [("CO", "45", "46.50"), ("PR", "2", "20.70")],
            allowed="103.50"),
        svc("97110", ["GO", "KX"], "100", "46.56", "A1B2C3D402", [("CO", "45", "41.80"), ("PR", "2", "11.64")],
            units="2", allowed="58.20"),
        svc("97530", ["GO", "CO", "KX"], "60", "0", "A1B2C3D403", [("CO", "45", "10"), ("PR", "1", "50")],
            allowed="50"),
    ]
    return cp


def secondary_payment() -> ClaimPayment:
    """The supplemental's 835: it pays 70.00 of the 82.34, 12.34 stays with the patient."""
    cp = ClaimPayment("PCN20250114B", "2", D("310"), D("70"), D("12.34"), "CI", "SUPP0002ICN", "11", "1")
    cp.services = [
        svc("97165", ["GO"], "150", "20.70", "A1B2C3D401", [("OA", "23", "129.30")]),
        svc("97110", ["GO", "KX"], "100", "11.64", "A1B2C3D402", [("OA", "23", "88.36")], units="2"),
        svc("97530", ["GO", "CO", "KX"], "60", "37.66", "A1B2C3D403", [("OA", "23", "10"), ("PR", "1", "12.34")]),
    ]
    return cp


def _supplemental_resources() -> list[dict[str, Any]]:
    supp = B.coverage(cid="cov-supp", member="SUPP44556677", filing="CI", payer="supp", group="MEDIGAP-F")
    supp["order"] = 2
    third = B.coverage(cid="cov-third", member="THRD0001", filing="CI", payer="third")
    third["order"] = 3
    return [B.payer_org("Acme Medigap", "ACME01", "supp"), B.payer_org("Third Plan", "THIRD01", "third"), supp, third]


def secondary_bundle() -> dict[str, Any]:
    """The OT claim to its secondary payer: insurance 1 (Medicare, claimResponse), 2 focal."""
    primary = B.medicare_ot_bundle()
    claim = primary["entry"][0]["resource"]
    response = payment_to_claim_response(remittance(), medicare_payment(), claim, response_id="cr-medicare")
    claim["id"] = "claim2"
    claim["identifier"][0]["value"] = "PCN20250114B"
    claim["insurer"] = {"reference": "Organization/supp"}
    claim["insurance"] = [
        {"sequence": 1, "focal": False, "coverage": {"reference": "Coverage/cov1"},
         "claimResponse": {"reference": "ClaimResponse/cr-medicare"}},
        {"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/cov-supp"}},
    ]
    return B.bundle(*[e["resource"] for e in primary["entry"]], response, *_supplemental_resources())


def tertiary_bundle() -> dict[str, Any]:
    """The OT claim to its third payer: insurance 1 and 2 with claimResponses, 3 focal."""
    b = secondary_bundle()
    claim = b["entry"][0]["resource"]
    response = payment_to_claim_response(remittance("2025-02-20"), secondary_payment(), claim,
                                         response_id="cr-supp")
    claim["id"] = "claim3"
    claim["identifier"][0]["value"] = "PCN20250114C"
    claim["insurer"] = {"reference": "Organization/third"}
    claim["insurance"] = [
        claim["insurance"][0],
        {"sequence": 2, "focal": False, "coverage": {"reference": "Coverage/cov-supp"},
         "claimResponse": {"reference": "ClaimResponse/cr-supp"}},
        {"sequence": 3, "focal": True, "coverage": {"reference": "Coverage/cov-third"}},
    ]
    return B.bundle(*[e["resource"] for e in b["entry"]], response)


def msp_bundle(msp_type: str | None = "12") -> dict[str, Any]:
    """The OT claim to Medicare as the second payer (Medicare Secondary Payer): an employer group
    plan (the supplemental's payer here) paid first; the Medicare Coverage says why (``msp_type``)."""
    from fhir_mappings.vocabulary import MSP_TYPE

    primary = B.medicare_ot_bundle()
    claim = primary["entry"][0]["resource"]
    response = payment_to_claim_response(remittance(), medicare_payment(),
                                         {**claim, "insurer": {"reference": "Organization/supp"}}, response_id="cr-ghp")
    claim["id"] = "claim-msp"
    claim["identifier"][0]["value"] = "PCN20250114M"
    claim["insurance"] = [
        {"sequence": 1, "focal": False, "coverage": {"reference": "Coverage/cov-supp"},
         "claimResponse": {"reference": "ClaimResponse/cr-ghp"}},
        {"sequence": 2, "focal": True, "coverage": {"reference": "Coverage/cov1"}},
    ]
    resources = [e["resource"] for e in primary["entry"]]
    medicare = next(r for r in resources if r["resourceType"] == "Coverage" and r["id"] == "cov1")
    if msp_type is not None:
        medicare.setdefault("extension", []).append({"url": MSP_TYPE, "valueCode": msp_type})
    supplemental = _supplemental_resources()
    next(r for r in supplemental if r.get("id") == "cov-supp")["order"] = 1
    return B.bundle(*resources, response, *supplemental)
