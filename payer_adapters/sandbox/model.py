"""The claim as the sandbox adjudicates it, read from any of the three wire forms.

* 837P: ``claims_from_837`` reads the file with the codec's 837P decoder (2010BA member, 2010BB
  payer, 2010AA billing NPI, 2310B rendering NPI, 2300 CLM/REF*G1, 2400 SV1/DTP*472/REF*6R, and
  the BHT03 batch a 277CA answers by);
* FHIR: ``claim_from_fhir`` reads a Claim plus the resources of its Bundle (identifiers through the
  product's resolver, fhir_mappings/PROFILE.md, Identifiers);
* CHC v3 JSON: ``claim_from_chc`` reads the professional-claims body.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12 import ClaimSubmission, Submission837, decode
from payer_adapters.x12.cob import prior_payers
from payer_adapters.x12.resources import ResourceIndex

_SEQUENCE = {1: "P", 2: "S", 3: "T"}


@dataclass
class Line:
    code: str
    modifiers: list[str]
    charge: Decimal
    units: Decimal
    service_date: str  # CCYYMMDD
    control: str = ""
    sequence: int = 0
    #: what the payers before this one decided on the line (secondary/tertiary claims)
    prior_paid: Decimal = Decimal(0)  # Σ their payments
    prior_liability: Decimal | None = None  # the patient's share the last of them left (its PR)


@dataclass
class Claim:
    pcn: str
    member_id: str
    payer_id: str
    billing_npi: str
    billing_name: str = ""
    rendering_npi: str = ""
    patient_last: str = ""
    patient_first: str = ""
    filing_code: str = ""
    prior_auth: str = ""
    frequency: str = "1"  # CLM05-3: 1 original, 7 replacement, 8 void
    original_icn: str = ""  # REF*F8: the payer's number of the claim a replacement or void stands for
    total: Decimal = Decimal(0)
    batch: str = ""  # BHT03 of the 837 transaction set the claim came in
    payer_sequence: str = "P"  # P primary, S secondary, T tertiary (837P SBR01)
    lines: list[Line] = field(default_factory=list)

    @property
    def first_date(self) -> str:
        return min((ln.service_date for ln in self.lines if ln.service_date), default="")

    @property
    def last_date(self) -> str:
        return max((ln.service_date for ln in self.lines if ln.service_date), default="")


def claims_from_837(data: bytes | str) -> list[Claim]:
    """Every 2300 claim of an 837P file, read with the codec's 837P decoder (the file passed the
    999 checks, which decode it the same way)."""
    return [_claim_from_submission(sub.reference, c) for sub in decode(data).of_type(Submission837)
            for c in sub.claims]


def _claim_from_submission(batch: str, c: ClaimSubmission) -> Claim:
    claim = Claim(pcn=c.patient_control_number, member_id=c.member_id, payer_id=c.payer_id,
                  billing_npi=c.billing_npi, billing_name=c.billing_name, rendering_npi=c.rendering_npi,
                  patient_last=c.patient_last, patient_first=c.patient_first, filing_code=c.filing_indicator,
                  prior_auth=c.prior_authorization, frequency=c.frequency or "1",
                  original_icn=c.original_reference or "", total=c.total, batch=batch)
    claim.payer_sequence = c.payer_sequence or "P"
    for n, line in enumerate(c.lines, start=1):
        ln = Line(code=line.code, modifiers=[m for m in line.modifiers if m], charge=line.charge,
                  units=line.units, service_date=(line.service_date or "").replace("-", ""),
                  control=line.line_control_number or "", sequence=n)
        if line.prior_payments:
            ln.prior_paid = sum((paid for _, paid, _ in line.prior_payments), Decimal(0))
            ln.prior_liability = sum((a for g, _, a in line.prior_payments[-1][2] if g == "PR"), Decimal(0))
        claim.lines.append(ln)
    return claim


def _index(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for r in resources:
        out[f"{r.get('resourceType')}/{r.get('id')}"] = r
    return out


def _ref(index: dict[str, dict[str, Any]], ref: dict[str, Any] | None) -> dict[str, Any] | None:
    if not ref:
        return None
    r = ref.get("reference", "")
    return index.get(r) or index.get(r.removeprefix("urn:uuid:"))


def claim_from_fhir(claim: dict[str, Any], resources: list[dict[str, Any]]) -> Claim:
    """A FHIR Claim (PAS-style Bundle content) in the sandbox's terms."""
    index = _index(resources)
    for r in resources:  # urn:uuid fullUrls resolve by id
        index.setdefault(str(r.get("id")), r)
    insurer = _ref(index, claim.get("insurer"))
    payer_id = ids.payer_id(insurer, claim.get("insurer")) or ""
    provider = _ref(index, claim.get("provider"))
    npi = ids.npi(provider, claim.get("provider")) or ""
    ins = next((i for i in claim.get("insurance") or [] if i.get("focal")), (claim.get("insurance") or [{}])[0])
    coverage = _ref(index, ins.get("coverage"))
    patient = _ref(index, claim.get("patient")) or {}
    name = (patient.get("name") or [{}])[0]
    rendering = ""
    for ct in claim.get("careTeam") or []:
        roles = [c.get("code") for c in (ct.get("role") or {}).get("coding") or []]
        if "primary" in roles:
            rendering = ids.npi(_ref(index, ct.get("provider")), ct.get("provider")) or ""
            break
    prior = next((r for r in claim.get("related") or [] if any(
        c.get("code") == "prior" for c in (r.get("relationship") or {}).get("coding") or [])), None)
    original = (ids.payer_claim_number(prior.get("reference")) or "") if prior else ""
    frequency = "8" if claim.get("status") == "cancelled" else "7" if prior else "1"
    out = Claim(pcn=ids.patient_control_number(claim) or str(claim.get("id", "")), frequency=frequency,
                original_icn=original,
                member_id=ids.member_id(coverage) or "", payer_id=payer_id, billing_npi=npi,
                billing_name=str((provider or {}).get("name", "")).upper(), rendering_npi=rendering,
                patient_last=str(name.get("family", "")).upper(),
                patient_first=str((name.get("given") or [""])[0]).upper(),
                prior_auth=next((p for i in claim.get("insurance") or [] for p in i.get("preAuthRef") or []), ""))
    for item in claim.get("item") or []:
        coding = (item.get("productOrService") or {}).get("coding") or [{}]
        mods = [c.get("code", "") for m in item.get("modifier") or [] for c in m.get("coding") or []]
        qty = Decimal(str((item.get("quantity") or {}).get("value", 1)))
        net = (item.get("net") or {}).get("value")
        charge = Decimal(str(net)) if net is not None else \
            Decimal(str((item.get("unitPrice") or {}).get("value", 0))) * qty
        date = str(item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start", "")).replace("-", "")
        control = next((e.get("valueString", "") for e in item.get("extension") or [] if e.get("url") == vocabulary.LINE_CONTROL_NUMBER), "")
        out.lines.append(Line(code=coding[0].get("code", ""), modifiers=mods, charge=charge, units=qty,
                              service_date=date[:8], control=control, sequence=int(item.get("sequence", 0))))
    out.total = sum((ln.charge for ln in out.lines), Decimal(0))
    priors = prior_payers(claim, ResourceIndex(resources))
    if priors:
        out.payer_sequence = _SEQUENCE.get(int(ins.get("sequence", 1)), "S")
        for ln in out.lines:
            found = [p.lines[ln.sequence] for p in priors if ln.sequence in p.lines]
            if found:
                ln.prior_paid = sum((f.paid for f in found), Decimal(0))
                ln.prior_liability = sum((a.amount for a in found[-1].adjustments if a.group == "PR"), Decimal(0))
    return out


def claim_from_chc(body: dict[str, Any]) -> Claim:
    """The CHC v3 professional-claims JSON in the sandbox's terms."""
    info = body.get("claimInformation") or {}
    sub = body.get("subscriber") or {}
    billing = body.get("billing") or {}
    rendering = body.get("rendering") or {}
    out = Claim(pcn=str(info.get("patientControlNumber", "")), member_id=str(sub.get("memberId", "")),
                payer_id=str(body.get("tradingPartnerServiceId", "")), billing_npi=str(billing.get("npi", "")),
                billing_name=str(billing.get("organizationName", "")).upper(),
                rendering_npi=str(rendering.get("npi", "")),
                patient_last=str(sub.get("lastName", "")).upper(), patient_first=str(sub.get("firstName", "")).upper(),
                filing_code=str(info.get("claimFilingCode", "")), frequency=str(info.get("claimFrequencyCode", "1")),
                prior_auth=str((info.get("claimSupplementalInformation") or {}).get("priorAuthorizationNumber", "")),
                original_icn=str((info.get("claimSupplementalInformation") or {}).get("claimControlNumber", "")),
                total=Decimal(str(info.get("claimChargeAmount", "0"))))
    out.payer_sequence = {"primary": "P", "secondary": "S", "tertiary": "T"}.get(
        str((sub.get("paymentResponsibilityLevelCode") or "")).lower(), str(sub.get("paymentResponsibilityLevelCode") or "P")[:1])
    for n, sl in enumerate(info.get("serviceLines") or [], start=1):
        ps = sl.get("professionalService") or {}
        ln = Line(code=str(ps.get("procedureCode", "")), modifiers=list(ps.get("procedureModifiers") or []),
                  charge=Decimal(str(ps.get("lineItemChargeAmount", "0"))),
                  units=Decimal(str(ps.get("serviceUnitCount", "1"))),
                  service_date=str(sl.get("serviceDate", "")), control=str(sl.get("providerControlNumber", "")),
                  sequence=n)
        adjudications = sl.get("lineAdjudicationInformation") or []
        if adjudications:
            ln.prior_paid = sum((Decimal(str(a.get("serviceLinePaidAmount", "0"))) for a in adjudications), Decimal(0))
            ln.prior_liability = sum((Decimal(str(adj.get("adjustmentAmount", "0")))
                                      for group in adjudications[-1].get("claimAdjustmentInformation") or []
                                      if group.get("adjustmentGroupCode") == "PR"
                                      for adj in group.get("adjustmentDetails") or []), Decimal(0))
        out.lines.append(ln)
        if not out.rendering_npi:
            out.rendering_npi = str((sl.get("renderingProvider") or {}).get("npi", ""))
    return out
