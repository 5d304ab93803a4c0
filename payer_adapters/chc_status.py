"""CHC v3 JSON claim status (``POST {base_url}/medicalnetwork/claimstatus/v2``, Stedi and Optum):
the request body from a submitted claim's package, and the answer read into the 277 codec's
records, so it becomes the same ClaimResponse a 277 file does (``fhir_277.claim_status_to_fhir``).

Request: ``controlNumber`` (a function of the inquiry key), ``tradingPartnerServiceId``,
``providers[]`` (the billing provider's NPI and name), ``subscriber{memberId, firstName, lastName,
dateOfBirth}``, ``encounter{beginningDateOfService, endDateOfService, patientAccountNumber (our
patient control number), tradingPartnerClaimNumber (the payer's, when known), submittedAmount}``.
Answer read: ``claims[].claimStatus{statusCategoryCode, statusCode, entityCode, effectiveDate,
submittedAmount, amountPaid, paidDate, checkIssueDate, checkNumber, tradingPartnerClaimNumber,
patientAccountNumber, statusCategoryCodeValue}``; no ``claims`` at all means no claim on file.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import fhir_mappings.identifiers as ids
from payer_adapters.chc_reports import _header
from payer_adapters.contract import ClaimPackage
from payer_adapters.errors import PayerRejection, operation_outcome
from payer_adapters.x12.decode_277 import ClaimStatus, Stc, StatusResponse277
from payer_adapters.x12.decode_277ca import Status
from payer_adapters.x12.encode_276 import _billed, _service_dates, payer_claim_number
from payer_adapters.x12.errors import EncodeError
from payer_adapters.x12.fhir_277 import claim_status_to_fhir
from payer_adapters.x12.resources import ResourceIndex

PATH = "/medicalnetwork/claimstatus/v2"


def person(r: dict[str, Any] | None) -> dict[str, str]:
    """A Patient's or Practitioner's first name as CHC JSON bodies carry it."""
    n = ((r or {}).get("name") or [{}])[0]
    return {"lastName": str(n.get("family", "")), "firstName": str((n.get("given") or [""])[0])}


@dataclass(frozen=True)
class Parties:
    """Who a claim package's Claim names, found in the package: every CHC body starts from these."""
    payer: dict[str, Any] | None
    payer_id: str
    insurance: dict[str, Any]  # the focal Claim.insurance
    coverage: dict[str, Any] | None
    patient: dict[str, Any] | None
    billing: dict[str, Any] | None


def claim_parties(pkg: ClaimPackage) -> Parties:
    claim = pkg.claim
    payer = pkg.find(claim.get("insurer"))
    ins = next((i for i in claim.get("insurance") or [] if i.get("focal")), (claim.get("insurance") or [{}])[0])
    return Parties(payer, ids.payer_id(payer, claim.get("insurer")) or "", ins, pkg.find(ins.get("coverage")),
                   pkg.find(claim.get("patient")), pkg.find(claim.get("provider")))


def status_request(pkg: ClaimPackage, *, control_number: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The claim status body for the package's Claim. A claim the request cannot describe (no
    service date, no member id) is a :class:`PayerRejection` naming the element."""
    claim = pkg.claim
    parties = claim_parties(pkg)
    payer_id, coverage, patient, billing = parties.payer_id, parties.coverage, parties.patient, parties.billing
    member = ids.member_id(coverage)
    try:
        start, end = _service_dates(claim)
        billed = _billed(claim)
    except EncodeError as err:
        raise PayerRejection("claim status request cannot be built", operation_outcome([{
            "code": "required", "diagnostics": err.message, "expression": ["Claim.item"]}])) from None
    if not member:
        raise PayerRejection("claim status request cannot be built", operation_outcome([{
            "code": "required", "diagnostics": "the Coverage has no member id",
            "expression": ["Claim.insurance.coverage"]}]))
    encounter: dict[str, Any] = {"beginningDateOfService": start, "endDateOfService": end,
                                 "patientAccountNumber": pkg.patient_control_number,
                                 "submittedAmount": format(billed.quantize(Decimal("0.01")), "f")}
    number = payer_claim_number(claim, ResourceIndex([claim, *pkg.resources]), pkg.patient_control_number)
    if number:
        encounter["tradingPartnerClaimNumber"] = number
    return {
        "controlNumber": control_number,
        "tradingPartnerServiceId": (settings.get("payer_ids") or {}).get(payer_id, payer_id),
        "providers": [{"providerType": "BillingProvider", "npi": ids.npi(billing, claim.get("provider")) or "",
                       "organizationName": str((billing or {}).get("name", ""))}],
        "subscriber": {"memberId": member, **person(patient),
                       "dateOfBirth": str((patient or {}).get("birthDate", "")).replace("-", "")},
        "encounter": encounter,
    }


def _date(value: Any) -> str | None:
    text = str(value or "").replace("-", "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else None


def _amount(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def status_response(body: dict[str, Any], pkg: ClaimPackage) -> dict[str, Any] | None:
    """The answer as a ClaimResponse for the package's Claim (the first claim status the payer
    returned), or None when it returned none (no claim on file)."""
    claims = body.get("claims") if isinstance(body.get("claims"), list) else []
    status = next((c.get("claimStatus") for c in claims if isinstance(c, dict)
                   and isinstance(c.get("claimStatus"), dict)), None)
    if status is None or not status.get("statusCategoryCode"):
        return None
    billed, paid = _amount(status.get("submittedAmount")), _amount(status.get("amountPaid"))
    effective = _date(status.get("effectiveDate"))
    text = str(status.get("statusCodeValue") or status.get("statusCategoryCodeValue") or "")
    st = Status(str(status["statusCategoryCode"]), str(status.get("statusCode") or ""),
                str(status.get("entityCode") or ""), effective, "", billed, 1, text)
    stc = Stc([st], effective, billed, paid, _date(status.get("paidDate")), "",
              _date(status.get("checkIssueDate")), str(status.get("checkNumber") or ""), text)
    payer = body.get("payer") if isinstance(body.get("payer"), dict) else {}
    sub = body.get("subscriber") if isinstance(body.get("subscriber"), dict) else {}
    claim = pkg.claim
    npi = ids.npi(pkg.find(claim.get("provider")), claim.get("provider")) or ""
    pcn = str(status.get("patientAccountNumber") or pkg.patient_control_number)
    record = ClaimStatus(pcn, [stc], patient_control_number=pcn,
                         payer_claim_number=str(status.get("tradingPartnerClaimNumber") or "") or None,
                         service_start=_date(status.get("claimServiceBeginDate")),
                         service_end=_date(status.get("claimServiceEndDate")),
                         payer_id=str(payer.get("payerIdentification") or body.get("tradingPartnerServiceId") or ""),
                         payer_name=str(payer.get("organizationName") or ""), provider_qualifier="XX" if npi else "",
                         provider_id=npi, member_id=str(sub.get("memberId") or "") or None)
    control = str(body.get("controlNumber") or "0")
    res = StatusResponse277(_header("277", "005010X212", "HN", control, control, effective), reference=control,
                            date=effective, payer_id=record.payer_id, payer_name=record.payer_name, claims=[record])
    return claim_status_to_fhir(res, record, claim)
