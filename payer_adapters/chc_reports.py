"""CHC v3 JSON reports (277CA and 835) → the records the X12 decoders produce.

A clearinghouse's JSON 277CA (``GET …/reports/v2/{id}/277``) and 835 (``…/835``) carry the data
of the X12 transaction they were converted from. Read into the same :class:`Ack277` and
:class:`Remittance` records, they are posted by the very functions that post X12 answers
(the server's posting): the same ClaimResponses, lifecycle moves and biller Tasks, the same
ExplanationOfBenefit/PaymentReconciliation, the same duplicate check — an 835's payment identity
(TRN02 ``checkOrEFTTraceNumber`` + payer id) is the same whichever form it came in, so an ERA
delivered once as X12 and once as JSON is posted once.

Shapes read (the dialect Stedi and Optum share)::

    277: transactions[] {controlNumber, referenceIdentification (BHT03), transactionSetCreationDate,
           payers[] (2000A) {entityIdentifierCode AY|PR, organizationName, payerIdentification|etin,
             claimStatusTransactions[] (2000B) {claimTransactionBatchNumber (2200B TRN02),
               provider{etin, organizationName|lastName}                                 (2100B)
               providerClaimStatuses[].providerStatuses[]                                (2200B)
               claimStatusDetails[] (2000C) {serviceProvider{npi|tin|spn, organizationName|lastName} (2100C)
                 providerOFServiceInformationTraceIdentifier                              (2200C TRN02)
                 serviceProviderClaimStatuses[].serviceProviderStatuses[]                (2200C)
                 patientClaimStatusDetails[] {subscriber{memberId}                        (2100D)
                   claims[] {claimStatus {referencedTransactionTraceNumber (TRN02 = CLM01),
                                tradingPartnerClaimNumber (REF*1K), clearinghouseTraceNumber (REF*D9),
                                claimServiceBeginDate|claimServiceDate,
                                informationClaimStatuses[] (one STC) {statusInformationActionCode,
                                  statusInformationEffectiveDate, totalClaimChargeAmount, statusMessage,
                                  informationStatuses[] {healthCareClaimStatusCategoryCode,
                                                         statusCode, entityIdentifierCode}}}
                             serviceLines[] (2220D) {lineItemControlNumber, beginServiceLineDate,
                                service{procedureCode, procedureModifiers[], chargeAmount},
                                serviceClaimStatuses[].serviceStatuses[]}}}}}}}
    835: transactions[] {controlNumber, productionDate,
           financialInformation (BPR) {transactionHandlingCode, totalActualProviderPaymentAmount,
             creditOrDebitFlagCode, paymentMethodCode, checkIssueOrEFTEffectiveDate},
           paymentAndRemitReassociationDetails (TRN) {checkOrEFTTraceNumber, originatingCompanyIdentifier},
           payer (1000A) {name, payerIdentificationNumber}, payee (1000B) {name, npi, taxId…},
           detailInfo[].paymentInfo[] (2100) {claimPaymentInfo (CLP), claimAdjustments[] (CAS),
             patientName|subscriber (NM1), renderingProvider, claimReceivedDate,
             claimStatementPeriodStart/End, outpatientAdjudication (MOA),
             serviceLines[] (2110) {servicePaymentInformation (SVC), serviceDate|serviceStartDate,
               serviceEndDate, serviceAdjustments[] (CAS), lineItemControlNumber (REF*6R),
               serviceSupplementalAmounts.allowedActual (AMT*B6), healthCareCheckRemarkCodes[] (LQ)}},
           providerAdjustments[] (PLB) {providerIdentifier, fiscalPeriodDate, adjustments[]}}

A report that does not fit raises :class:`ReportError` naming the JSON path, never a value (the
core quarantines the message with a Task). Nothing here touches a clock, a database or the network.
"""
from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

from payer_adapters.x12.decode import DecodeResult
from payer_adapters.x12.decode_277ca import Ack277, ClaimAck, LevelAck, LineStatus, Status, place_claim
from payer_adapters.x12.decode_835 import (
    Adjustment, ClaimPayment, ProviderAdjustment, Remittance, ServicePayment, close_remittance,
)
from payer_adapters.x12.envelope import Group, Interchange, SetHeader
from payer_adapters.x12.segments import Separators

#: The X12 implementation guides the JSON forms stand for (recorded on the synthetic headers).
VERSION_277CA = "005010X214"
VERSION_835 = "005010X221A1"

_AMOUNT = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_D8 = re.compile(r"(\d{4})(\d{2})(\d{2})")
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_Z = Decimal(0)


class ReportError(ValueError):
    """A clearinghouse JSON report that cannot be read. ``path`` is where (``transactions[0].…``);
    the message names the problem and the path only, never a value from the report."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{message} (at {path})" if path else message)
        self.path = path


# -- typed access with paths ----------------------------------------------------------------------

def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ReportError("expected a JSON object", path)
    return value


def _items(parent: dict[str, Any], key: str, path: str) -> list[tuple[dict[str, Any], str]]:
    """The objects of the array ``parent[key]`` with their paths (absent → none)."""
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportError("expected an array", f"{path}.{key}")
    return [(_obj(v, f"{path}.{key}[{n}]"), f"{path}.{key}[{n}]") for n, v in enumerate(value)]


def _child(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = parent.get(key)
    return {} if value is None else _obj(value, f"{path}.{key}")


def _text(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> str:
    value = parent.get(key)
    if value is None or value == "":
        if required:
            raise ReportError("required value missing", f"{path}.{key}")
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ReportError("expected a string", f"{path}.{key}")
    return str(value).strip()  # numbers are tolerated: amounts parse as Decimal, never float


def _texts(parent: dict[str, Any], key: str, path: str) -> list[str]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReportError("expected an array of strings", f"{path}.{key}")
    return [v for v in value if v]


def _amount(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> Decimal | None:
    raw = _text(parent, key, path, required=required)
    if not raw:
        return None
    if not _AMOUNT.fullmatch(raw):
        raise ReportError("not a decimal amount", f"{path}.{key}")
    return Decimal(raw)


def _required_amount(parent: dict[str, Any], key: str, path: str) -> Decimal:
    return _amount(parent, key, path, required=True)  # type: ignore[return-value]


def _date(parent: dict[str, Any], key: str, path: str) -> str | None:
    """``CCYYMMDD`` (most report dates) or ``YYYY-MM-DD`` (the claim statement period) → ISO."""
    raw = _text(parent, key, path)
    if not raw:
        return None
    m = _D8.fullmatch(raw) or _ISO.fullmatch(raw)
    if m is None:
        raise ReportError("not a date (CCYYMMDD)", f"{path}.{key}")
    try:
        return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        raise ReportError("not a calendar date", f"{path}.{key}") from None


# -- entry points ---------------------------------------------------------------------------------

def load_report(data: bytes | str | dict[str, Any]) -> dict[str, Any]:
    """The report's JSON object (bytes as received, text, or an already parsed dict)."""
    if isinstance(data, dict):
        return data
    try:
        body = json.loads(data, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ReportError("the report is not JSON") from None
    return _obj(body, "$")


def report_kind(body: dict[str, Any]) -> str | None:
    """``277CA`` or ``835`` by shape (a 277 lists ``payers``, an 835 ``financialInformation`` or
    ``detailInfo``); None when the first transaction looks like neither."""
    txs = body.get("transactions")
    first = txs[0] if isinstance(txs, list) and txs and isinstance(txs[0], dict) else {}
    if "payers" in first:
        return "277CA"
    if "financialInformation" in first or "detailInfo" in first:
        return "835"
    return None


def decode_report(data: bytes | str | dict[str, Any], *, kind: str | None = None) -> DecodeResult:
    """A CHC v3 JSON 277CA or 835 report as a :class:`DecodeResult` — the X12 decoder's result type,
    so the server posts both forms with the same code. ``kind`` (``277CA``/``835``, as the report
    list named it) must agree with the report's shape. Raises :class:`ReportError`."""
    body = load_report(data)
    txs = _items(body, "transactions", "$")
    if not txs:
        raise ReportError("the report has no transactions", "$.transactions")
    found = report_kind(body)
    if found is None:
        raise ReportError("neither a 277CA nor an 835 report", "$.transactions[0]")
    if kind is not None and kind != found:
        raise ReportError(f"listed as a {kind} report but shaped as a {found}", "$.transactions[0]")
    report_id = _report_id(body)
    result = DecodeResult()
    for t, (tx, path) in enumerate(txs):
        if found == "277CA":
            result.transactions.extend(acks_from_json(tx, path, report_id=f"{report_id}:{t}"))
        else:
            result.transactions.append(remittance_from_json(tx, path, report_id=f"{report_id}:{t}"))
    return result


def _report_id(body: dict[str, Any]) -> str:
    """Stands in for the ISA13 in the decoders' stable ids: the clearinghouse's transaction id, else
    a digest of the report (the same report read twice gives the same resource ids)."""
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    tid = meta.get("transactionId")
    if isinstance(tid, str) and tid:
        return tid
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()[:32]


def _header(transaction: str, version: str, functional_id: str, control: str, interchange_id: str,
            created: str | None) -> SetHeader:
    """A SetHeader for a transaction that had no envelope: ids come from the report, the date is
    the report's creation date (the decoders' last-resort ``created``)."""
    d8 = (created or "1900-01-01").replace("-", "")
    isa = Interchange("ZZ", "", "ZZ", "", d8[2:], "0000", "00501", interchange_id, False, "P", Separators())
    group = Group(functional_id, "", "", d8, "0000", control, version)
    return SetHeader(transaction, control, version, isa, group)


# -- 277CA ----------------------------------------------------------------------------------------

def _statuses(holder: dict[str, Any], key: str, path: str, *, action: str = "", when: str | None = None,
              amount: Decimal | None = None, message: str = "") -> list[Status]:
    """The statuses of one STC: the first stands for STC01, the next for STC10 and STC11."""
    out = []
    for n, (st, p) in enumerate(_items(holder, key, path)):
        out.append(Status(_text(st, "healthCareClaimStatusCategoryCode", p, required=True),
                          _text(st, "statusCode", p), _text(st, "entityIdentifierCode", p), when, action, amount,
                          (1, 10, 11)[n] if n < 3 else 11, message))
    return out


def _information_statuses(holder: dict[str, Any], key: str, inner: str, path: str) -> list[Status]:
    """One X12 STC per element of ``key``: its action code, date, amount and message apply to each
    of its ``inner`` statuses (STC01, STC10, STC11)."""
    out: list[Status] = []
    for info, p in _items(holder, key, path):
        out += _statuses(info, inner, p, action=_text(info, "statusInformationActionCode", p),
                         when=_date(info, "statusInformationEffectiveDate", p),
                         amount=_amount(info, "totalClaimChargeAmount", p),
                         message=_text(info, "statusMessage", p))
    return out


def _name(party: dict[str, Any], path: str) -> str:
    return _text(party, "organizationName", path) or _text(party, "lastName", path)


def _receiver(tx: dict[str, Any], path: str, source: LevelAck) -> LevelAck:
    """2000B: the information receiver (our submitter) and the batch: ``claimTransactionBatchNumber``
    is the 2200B TRN02, which echoes the BHT03 of the 837 acknowledged."""
    who = _child(tx, "provider", path)
    etin = _text(who, "etin", f"{path}.provider")
    trace = _text(tx, "claimTransactionBatchNumber", path) or None
    return LevelAck("information-receiver", "2200B", entity="41", id_qualifier="46" if etin else "", id=etin,
                    name=_name(who, f"{path}.provider"), trace=trace, batch_trace=trace, parent=source,
                    statuses=_information_statuses(tx, "providerClaimStatuses", "providerStatuses", path))


def _billing_provider(detail: dict[str, Any], path: str, receiver: LevelAck) -> LevelAck:
    """2000C: the billing provider by NPI (XX), else TIN (FI), else service provider number (SV)."""
    sp = _child(detail, "serviceProvider", path)
    spp = f"{path}.serviceProvider"
    npi, tin, spn = _text(sp, "npi", spp), _text(sp, "tin", spp), _text(sp, "spn", spp)
    qualifier, ident = ("XX", npi) if npi else ("FI", tin) if tin else ("SV", spn) if spn else ("", "")
    return LevelAck("billing-provider", "2200C", entity="85", id_qualifier=qualifier, id=ident,
                    name=_name(sp, spp), tin=tin or None,
                    trace=_text(detail, "providerOFServiceInformationTraceIdentifier", path) or None,
                    batch_trace=receiver.trace, parent=receiver,
                    statuses=_information_statuses(detail, "serviceProviderClaimStatuses",
                                                   "serviceProviderStatuses", path))


def _claim_ack(claim: dict[str, Any], path: str, member_id: str, npi: str | None) -> ClaimAck:
    cs = _child(claim, "claimStatus", path)
    csp = f"{path}.claimStatus"
    pcn = _text(cs, "referencedTransactionTraceNumber", csp) or _text(cs, "patientAccountNumber", csp)
    if not pcn:
        raise ReportError("claim has no referencedTransactionTraceNumber (patient control number)", csp)
    ack = ClaimAck(patient_control_number=pcn,
                   statuses=_information_statuses(cs, "informationClaimStatuses", "informationStatuses", csp),
                   payer_claim_control_number=_text(cs, "tradingPartnerClaimNumber", csp) or None,
                   clearinghouse_trace=_text(cs, "clearinghouseTraceNumber", csp) or None,
                   member_id=member_id or None,
                   service_date=_date(cs, "claimServiceBeginDate", csp) or _date(cs, "claimServiceDate", csp),
                   billing_npi=npi)
    for line, lp in _items(claim, "serviceLines", path):
        svc = _child(line, "service", lp)
        ls = LineStatus(_text(svc, "procedureCode", f"{lp}.service", required=True),
                        _texts(svc, "procedureModifiers", f"{lp}.service")[:4],
                        _amount(svc, "chargeAmount", f"{lp}.service"),
                        line_control_number=_text(line, "lineItemControlNumber", lp) or None,
                        service_date=_date(line, "beginServiceLineDate", lp) or _date(line, "serviceLineDate", lp))
        for scs, sp in _items(line, "serviceClaimStatuses", lp):
            ls.statuses += _statuses(scs, "serviceStatuses", sp, when=_date(scs, "effectiveDate", sp))
        ack.lines.append(ls)
    return ack


def acks_from_json(tx: dict[str, Any], path: str, *, report_id: str) -> list[Ack277]:
    """One JSON 277CA transaction → one :class:`Ack277` per information source (``payers[]``,
    the X12 2000A: a clearinghouse and a payer may both acknowledge the same claim)."""
    control = _text(tx, "controlNumber", path) or "0001"
    created = _date(tx, "transactionSetCreationDate", path)
    reference = _text(tx, "referenceIdentification", path)
    out = []
    for p, (payer, pp) in enumerate(_items(tx, "payers", path)):
        source_id = _text(payer, "payerIdentification", pp) or _text(payer, "etin", pp)
        # BHT03 + source identify the acknowledgment across deliveries; the report id otherwise.
        identity = f"{reference}:{source_id}" if reference else report_id
        ack = Ack277(_header("277", VERSION_277CA, "HN", control, f"{identity}:{p}", created),
                     source_name=_text(payer, "organizationName", pp), source_id=source_id,
                     source_entity=_text(payer, "entityIdentifierCode", pp), reference=reference,
                     process_date=created)
        source = LevelAck("information-source", "2200A", entity=ack.source_entity,
                          id_qualifier="PI" if _text(payer, "payerIdentification", pp) else "46" if source_id else "",
                          id=source_id, name=ack.source_name)
        ack.levels.append(source)
        for cst, cp in _items(payer, "claimStatusTransactions", pp):
            receiver = _receiver(cst, cp, source)
            ack.levels.append(receiver)
            for detail, dp in _items(cst, "claimStatusDetails", cp):
                provider = _billing_provider(detail, dp, receiver)
                ack.levels.append(provider)
                for patient, ptp in _items(detail, "patientClaimStatusDetails", dp):
                    member = _text(_child(patient, "subscriber", ptp), "memberId", f"{ptp}.subscriber")
                    for claim, clp in _items(patient, "claims", ptp):
                        c = _claim_ack(claim, clp, member, provider.npi)
                        place_claim(c, provider)
                        ack.claims.append(c)
        out.append(ack)
    return out


# -- 835 ------------------------------------------------------------------------------------------

def _adjustments(holder: dict[str, Any], key: str, path: str) -> list[Adjustment]:
    """CAS: a group code and up to six reason/amount/quantity triplets per element."""
    out = []
    for cas, p in _items(holder, key, path):
        group = _text(cas, "claimAdjustmentGroupCode", p, required=True)
        for i in range(1, 7):
            reason = _text(cas, f"adjustmentReasonCode{i}", p)
            if not reason:
                continue
            out.append(Adjustment(group, reason, _required_amount(cas, f"adjustmentAmount{i}", p),
                                  _amount(cas, f"adjustmentQuantity{i}", p)))
    return out


def _remark_codes(holder: dict[str, Any], path: str) -> list[str]:
    """MOA/MIA claim payment remark codes 1–5 (RARC)."""
    out = []
    for key in ("outpatientAdjudication", "inpatientAdjudication"):
        adj = _child(holder, key, path)
        out += [c for c in (_text(adj, f"claimPaymentRemarkCode{i}", f"{path}.{key}") for i in range(1, 6)) if c]
    return out


def _service(line: dict[str, Any], path: str, position: int) -> ServicePayment:
    spi = _child(line, "servicePaymentInformation", path)
    sp = f"{path}.servicePaymentInformation"
    svc = ServicePayment(
        _text(spi, "productOrServiceIDQualifier", sp) or "HC",
        _text(spi, "adjudicatedProcedureCode", sp, required=True),
        _texts(spi, "adjudicatedProcedureModifierCodes", sp)[:4],
        _required_amount(spi, "lineItemChargeAmount", sp), _required_amount(spi, "lineItemProviderPaymentAmount", sp),
        _amount(spi, "unitsOfServicePaidCount", sp) or Decimal(1),
        _text(spi, "submittedAdjudicatedProcedureCode", sp) or None,
        service_date=_date(line, "serviceDate", path) or _date(line, "serviceStartDate", path),
        service_end=_date(line, "serviceEndDate", path),
        line_control_number=_text(line, "lineItemControlNumber", path) or None,
        allowed=_amount(_child(line, "serviceSupplementalAmounts", path), "allowedActual",
                        f"{path}.serviceSupplementalAmounts"),
        adjustments=_adjustments(line, "serviceAdjustments", path),
        position=position)
    for rc, rp in _items(line, "healthCareCheckRemarkCodes", path):
        if _text(rc, "codeListQualifierCode", rp) in ("", "HE"):
            code = _text(rc, "remarkCode", rp)
            if code:
                svc.remarks.append(code)
    return svc


def _claim_payment(info: dict[str, Any], path: str, position: int) -> ClaimPayment:
    cpi = _child(info, "claimPaymentInfo", path)
    cp = f"{path}.claimPaymentInfo"
    claim = ClaimPayment(
        _text(cpi, "patientControlNumber", cp, required=True), _text(cpi, "claimStatusCode", cp, required=True),
        _required_amount(cpi, "totalClaimChargeAmount", cp), _required_amount(cpi, "claimPaymentAmount", cp),
        _amount(cpi, "patientResponsibilityAmount", cp) or _Z, _text(cpi, "claimFilingIndicatorCode", cp),
        _text(cpi, "payerClaimControlNumber", cp), _text(cpi, "facilityTypeCode", cp),
        _text(cpi, "claimFrequencyCode", cp), adjustments=_adjustments(info, "claimAdjustments", path),
        position=position)
    patient = _child(info, "patientName", path)
    if patient:
        claim.patient_name = (_text(patient, "lastName", f"{path}.patientName"),
                              _text(patient, "firstName", f"{path}.patientName"))
    claim.member_id = (_text(patient, "memberId", f"{path}.patientName")
                       or _text(_child(info, "subscriber", path), "memberId", f"{path}.subscriber") or None)
    claim.rendering_npi = _text(_child(info, "renderingProvider", path), "npi", f"{path}.renderingProvider") or None
    claim.received_date = _date(info, "claimReceivedDate", path)
    claim.period = (_date(info, "claimStatementPeriodStart", path), _date(info, "claimStatementPeriodEnd", path))
    claim.remarks = _remark_codes(info, path)
    for n, (line, lp) in enumerate(_items(info, "serviceLines", path), start=1):
        claim.services.append(_service(line, lp, position * 100 + n))
    return claim


def remittance_from_json(tx: dict[str, Any], path: str, *, report_id: str) -> Remittance:
    """One JSON 835 transaction → a :class:`Remittance`, balance-checked like a decoded X12 835."""
    fin = _child(tx, "financialInformation", path)
    fp = f"{path}.financialInformation"
    trn = _child(tx, "paymentAndRemitReassociationDetails", path)
    tp = f"{path}.paymentAndRemitReassociationDetails"
    payer = _child(tx, "payer", path)
    payee = _child(tx, "payee", path)
    production = _date(tx, "productionDate", path)
    payment_date = _date(fin, "checkIssueOrEFTEffectiveDate", fp)
    control = _text(tx, "controlNumber", path) or "0001"
    rem = Remittance(_header("835", VERSION_835, "HP", control, report_id, production or payment_date))
    rem.handling = _text(fin, "transactionHandlingCode", fp)
    rem.total_paid = _required_amount(fin, "totalActualProviderPaymentAmount", fp)
    rem.credit_debit = _text(fin, "creditOrDebitFlagCode", fp)
    rem.method = _text(fin, "paymentMethodCode", fp)
    rem.payment_date = payment_date
    rem.trace_number = _text(trn, "checkOrEFTTraceNumber", tp, required=True)  # TRN02: the payment identity
    rem.trace_originator = _text(trn, "originatingCompanyIdentifier", tp)
    rem.production_date = production
    rem.payer_name = _text(payer, "name", f"{path}.payer")
    rem.payer_id = (_text(payer, "payerIdentificationNumber", f"{path}.payer")
                    or _text(payer, "centersForMedicareAndMedicaidServicesPlanId", f"{path}.payer"))
    rem.payee_name = _text(payee, "name", f"{path}.payee")
    rem.payee_npi = _text(payee, "npi", f"{path}.payee") or None
    rem.payee_tin = (_text(payee, "taxId", f"{path}.payee")
                     or _text(payee, "federalTaxPayersIdentificationNumber", f"{path}.payee") or None)
    position = 0
    for detail, dp in _items(tx, "detailInfo", path):
        for info, ip in _items(detail, "paymentInfo", dp):
            position += 1
            rem.claims.append(_claim_payment(info, ip, position))
    for plb, pp in _items(tx, "providerAdjustments", path):
        provider = _text(plb, "providerIdentifier", pp)
        period = _date(plb, "fiscalPeriodDate", pp) or ""
        for adj, ap in _items(plb, "adjustments", pp):
            rem.provider_adjustments.append(ProviderAdjustment(
                provider, period, _text(adj, "adjustmentReasonCode", ap, required=True),
                _text(adj, "providerAdjustmentIdentifier", ap),
                _required_amount(adj, "providerAdjustmentAmount", ap)))
    return close_remittance(rem)


__all__ = ["ReportError", "decode_report", "load_report", "report_kind", "acks_from_json", "remittance_from_json"]
