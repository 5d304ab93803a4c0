"""The sandbox clearinghouse's JSON reports: its X12 277CA and 835, converted to CHC v3 JSON.

Optum's ``GET /medicalnetwork/reports/v2/{file}/277|835`` (and Stedi's) return the report as
JSON, the plain ``…/{file}`` as the X12 it was converted from. The sandbox
writes X12 (``x12_out.py``) and converts it here, through the codec's decoder, so the JSON says
exactly what the X12 says; descriptions (``…CodeValue``, ``adjustmentReason1``, ``remark``) come
from the codec's code tables (``payer_adapters/x12/data``). The inverse, for the server, is
``payer_adapters.chc_reports``.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from payer_adapters.x12 import codes as C
from payer_adapters.x12 import decode
from payer_adapters.x12.decode_277ca import Ack277, ClaimAck, Status
from payer_adapters.x12.decode_835 import Adjustment, ClaimPayment, Remittance, ServicePayment
from payer_adapters.x12.resources import fmt_amount


def _d8(iso: str | None) -> str | None:
    return iso.replace("-", "") if iso else None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else fmt_amount(value)


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """Drop empty members, as the clearinghouse omits what the X12 did not carry."""
    return {k: v for k, v in obj.items() if v not in (None, "", [], {})}


def _status(s: Status) -> dict[str, Any]:
    return _clean({"healthCareClaimStatusCategoryCode": s.category,
                   "healthCareClaimStatusCategoryCodeValue": C.describe("stc_categories", s.category),
                   "statusCode": s.code, "statusCodeValue": C.describe("stc_status", s.code) if s.code else None,
                   "entityIdentifierCode": s.entity,
                   "entityIdentifierCodeValue": C.describe("entity_codes", s.entity) if s.entity else None})


def _stc(s: Status, inner: str) -> dict[str, Any]:
    """One X12 STC → one ``informationClaimStatuses``-style element."""
    return _clean({"statusInformationActionCode": s.action, "statusInformationEffectiveDate": _d8(s.date),
                   "totalClaimChargeAmount": _money(s.amount), inner: [_status(s)]})


def _claim_277(c: ClaimAck) -> dict[str, Any]:
    status = _clean({"referencedTransactionTraceNumber": c.patient_control_number,
                     "patientAccountNumber": c.patient_control_number,
                     "tradingPartnerClaimNumber": c.payer_claim_control_number,
                     "clearinghouseTraceNumber": c.clearinghouse_trace,
                     "claimServiceBeginDate": _d8(c.service_date),
                     "informationClaimStatuses": [_stc(s, "informationStatuses") for s in c.statuses]})
    out: dict[str, Any] = {"claimStatus": status}
    lines = [_clean({"lineItemControlNumber": ln.line_control_number,
                     "beginServiceLineDate": _d8(ln.service_date),
                     "service": _clean({"serviceIdQualifierCode": "HC", "procedureCode": ln.code,
                                        "procedureModifiers": ln.modifiers, "chargeAmount": _money(ln.charge)}),
                     "serviceClaimStatuses": [_clean({"effectiveDate": _d8(s.date), "serviceStatuses": [_status(s)]})
                                              for s in ln.statuses]})
             for ln in c.lines]
    if lines:
        out["serviceLines"] = lines
    return out


def ack277_json(ack: Ack277) -> dict[str, Any]:
    """One decoded 277CA transaction set as a CHC v3 ``transactions[]`` element (one ``payers[]``
    entry for its 2000A source, claims grouped by billing NPI as in 2000C), so the JSON a client
    reads holds exactly what the X12 held."""
    by_npi: dict[str, list[ClaimAck]] = {}
    for c in ack.claims:
        by_npi.setdefault(c.billing_npi or "", []).append(c)
    details = [_clean({"serviceProvider": _clean({"npi": npi}),
                       "patientClaimStatusDetails": [{"subscriber": _clean({"memberId": c.member_id}),
                                                      "claims": [_claim_277(c)]} for c in claims]})
               for npi, claims in by_npi.items()]
    payer = _clean({"entityIdentifierCode": ack.source_entity,
                    "entityIdentifierCodeValue": C.describe("entity_codes", ack.source_entity) if ack.source_entity else None,
                    "organizationName": ack.source_name,
                    ("payerIdentification" if ack.source_entity == "PR" else "etin"): ack.source_id,
                    "claimStatusTransactions": [_clean({
                        "providerClaimStatuses": [_stc(s, "providerStatuses") for s in ack.batch_statuses],
                        "claimStatusDetails": details})]})
    return _clean({"controlNumber": ack.header.control_number, "referenceIdentification": ack.reference,
                   "transactionSetCreationDate": _d8(ack.process_date) or ack.header.group.date,
                   "payers": [payer]})


def _cas(adjustments: list[Adjustment]) -> list[dict[str, Any]]:
    """CAS elements: one per group code, up to six reasons each, as the X12 writer groups them."""
    groups: dict[str, list[Adjustment]] = {}
    for a in adjustments:
        groups.setdefault(a.group, []).append(a)
    out = []
    for group, items in groups.items():
        for start in range(0, len(items), 6):
            cas: dict[str, Any] = {"claimAdjustmentGroupCode": group,
                                   "claimAdjustmentGroupCodeValue": C.describe("adjustment_groups", group)}
            for i, a in enumerate(items[start:start + 6], start=1):
                cas[f"adjustmentReasonCode{i}"] = a.reason
                cas[f"adjustmentReason{i}"] = C.describe("carc", a.reason)
                cas[f"adjustmentAmount{i}"] = fmt_amount(a.amount)
                if a.quantity is not None:
                    cas[f"adjustmentQuantity{i}"] = fmt_amount(a.quantity)
            out.append(_clean(cas))
    return out


def _service_835(s: ServicePayment) -> dict[str, Any]:
    return _clean({
        "lineItemControlNumber": s.line_control_number,
        "serviceDate": _d8(s.service_date) if not s.service_end else None,
        "serviceStartDate": _d8(s.service_date) if s.service_end else None,
        "serviceEndDate": _d8(s.service_end),
        "servicePaymentInformation": _clean({
            "productOrServiceIDQualifier": s.qualifier, "adjudicatedProcedureCode": s.code,
            "adjudicatedProcedureModifierCodes": [m for m in s.modifiers if m],
            "lineItemChargeAmount": fmt_amount(s.charge), "lineItemProviderPaymentAmount": fmt_amount(s.paid),
            "unitsOfServicePaidCount": _money(s.units), "submittedAdjudicatedProcedureCode": s.original_code}),
        "serviceAdjustments": _cas(s.adjustments),
        "serviceSupplementalAmounts": _clean({"allowedActual": _money(s.allowed)}),
        "healthCareCheckRemarkCodes": [_clean({"codeListQualifierCode": "HE", "remarkCode": r,
                                               "remark": C.describe("rarc", r)}) for r in s.remarks],
    })


def _claim_835(c: ClaimPayment) -> dict[str, Any]:
    remarks = {f"claimPaymentRemarkCode{i}": r for i, r in enumerate(c.remarks[:5], start=1)}
    return _clean({
        "claimPaymentInfo": _clean({
            "patientControlNumber": c.patient_control_number, "claimStatusCode": c.status,
            "totalClaimChargeAmount": fmt_amount(c.charge), "claimPaymentAmount": fmt_amount(c.paid),
            "patientResponsibilityAmount": fmt_amount(c.patient_responsibility),
            "claimFilingIndicatorCode": c.filing_indicator, "payerClaimControlNumber": c.payer_claim_control_number,
            "facilityTypeCode": c.facility_code, "claimFrequencyCode": c.frequency}),
        "claimAdjustments": _cas(c.adjustments),
        "patientName": _clean({"lastName": (c.patient_name or ("", ""))[0], "firstName": (c.patient_name or ("", ""))[1],
                               "memberId": c.member_id}),
        "renderingProvider": _clean({"npi": c.rendering_npi}),
        "claimReceivedDate": _d8(c.received_date),
        "claimStatementPeriodStart": c.period[0], "claimStatementPeriodEnd": c.period[1],
        "outpatientAdjudication": remarks,
        "serviceLines": [_service_835(s) for s in c.services],
    })


def remittance_json(rem: Remittance) -> dict[str, Any]:
    """One decoded 835 transaction set as a CHC v3 ``transactions[]`` element, every amount, code
    and date the X12 carried (the payment identity included, so duplicates stay recognizable)."""
    plb: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in rem.provider_adjustments:
        plb.setdefault((p.provider_id, p.fiscal_period_end), []).append(_clean({
            "adjustmentReasonCode": p.reason, "providerAdjustmentIdentifier": p.reference,
            "providerAdjustmentAmount": fmt_amount(p.amount)}))
    return _clean({
        "controlNumber": rem.header.control_number,
        "productionDate": _d8(rem.production_date),
        "financialInformation": _clean({
            "transactionHandlingCode": rem.handling, "totalActualProviderPaymentAmount": fmt_amount(rem.total_paid),
            "creditOrDebitFlagCode": rem.credit_debit, "paymentMethodCode": rem.method,
            "checkIssueOrEFTEffectiveDate": _d8(rem.payment_date)}),
        "paymentAndRemitReassociationDetails": _clean({"traceTypeCode": "1", "checkOrEFTTraceNumber": rem.trace_number,
                                                       "originatingCompanyIdentifier": rem.trace_originator}),
        "payer": _clean({"name": rem.payer_name, "payerIdentificationNumber": rem.payer_id}),
        "payee": _clean({"name": rem.payee_name, "npi": rem.payee_npi, "taxId": rem.payee_tin}),
        "detailInfo": [{"assignedNumber": "1", "paymentInfo": [_claim_835(c) for c in rem.claims]}] if rem.claims else [],
        "providerAdjustments": [_clean({"providerIdentifier": prov, "fiscalPeriodDate": _d8(period) or None,
                                        "adjustments": adjs}) for (prov, period), adjs in plb.items()],
    })


def convert_report(x12: str | bytes, *, transaction_id: str, sender_id: str, usage: str = "test") -> dict[str, Any]:
    """The JSON report for one of the sandbox's X12 277CA or 835 files (``meta`` + ``transactions``),
    what a client of the ``…/277`` and ``…/835`` endpoints receives."""
    result = decode(x12)
    txs = [ack277_json(a) for a in result.claim_acknowledgments] + [remittance_json(r) for r in result.remittances]
    return {"meta": {"applicationMode": usage, "senderId": sender_id, "transactionId": transaction_id},
            "transactions": txs}
