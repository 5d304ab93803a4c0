"""Claim status answers: what the sandbox says when asked about a claim (a 276 in the mailbox, the
CHC ``claimstatus`` endpoint, FHIR ``Claim/$inquire``).

The answer comes from the ledger's record of the claims received (``Ledger.on_file``, by patient
control number), never from the request alone: a claim the payer never took in (a lost file, a
dropped call) is "not found" (A4:35); a claim rejected by the front end is answered with its own
edit (A7:164…); a pended FHIR claim is pending (P1:20); an adjudicated claim is paid (F1:65, with
the amount, the date and the payer's claim number) or denied (F2). Codes live in the data file
(``claim_status``). The 277 is written in the loop tree the codec's ``decode_277`` reads.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from payer_adapters.sandbox.engine import ClaimResult, Engine
from payer_adapters.sandbox.x12_out import ReplyWriter
from payer_adapters.x12 import StatusInquiry, StatusRequest276, decode
from payer_adapters.x12.resources import fmt_amount


@dataclass
class StatusAnswer:
    """One claim's status as the payer reports it."""

    category: str
    status: str
    entity: str
    text: str
    result: ClaimResult | None = None  # the claim on file, None when not found

    @property
    def found(self) -> bool:
        return self.result is not None

    @property
    def billed(self) -> Decimal | None:
        return self.result.claim.total if self.result is not None else None

    @property
    def paid(self) -> Decimal | None:
        if self.result is None or self.result.rejected or self.category.startswith(("P", "A")):
            return None
        return self.result.paid

    @property
    def adjudicated(self) -> date | None:
        return self.result.received if self.result is not None and self.paid is not None else None


def status_of(engine: Engine, pcn: str, *, pended: bool = False) -> StatusAnswer:
    """The status of the claim with patient control number ``pcn`` as the sandbox has it."""
    table = engine.data["claim_status"]
    with engine.ledger.lock:
        result = engine.ledger.on_file.get(pcn)
    if result is None:
        row = table["not_found"]
        return StatusAnswer(row["category"], row["status"], row.get("entity", ""), row["text"])
    if result.rejected:
        edit = next((e for e in result.edits if e.line is None), result.edits[0])
        return StatusAnswer(edit.category, edit.status, edit.entity, edit.text, result)
    row = table["pending"] if pended else table["paid"] if result.paid > 0 else table["denied"]
    return StatusAnswer(row["category"], row["status"], row.get("entity", ""), row["text"], result)


def read_276(data: bytes | str) -> list[StatusInquiry]:
    """Every claim asked about in a 276 file (read with the codec's 276 decoder)."""
    return [q for req in decode(data).of_type(StatusRequest276) for q in req.inquiries]


def write_277(reply: ReplyWriter, answers: list[tuple[StatusInquiry, StatusAnswer]], *, reference: str,
              config: dict[str, Any]) -> str:
    """One 277 (005010X212) set per claim asked about: 2000A payer, 2000B information receiver,
    2000C service provider, 2000D subscriber (2000E the patient when a dependent), 2200D/E with
    TRN*2 echoing the 276's TRN02, the STC, REF*1K (the payer's claim number when on file),
    REF*EJ and DTP*472."""
    w = reply.envelope("HN", "005010X212")
    d, t = reply.now.strftime("%Y%m%d"), reply.now.strftime("%H%M")
    for n, (q, a) in enumerate(answers, start=1):
        s = w.begin_set("277", n)
        s.seg("BHT", "0010", "08", reference[:30], d, t, "DG")
        payer = config["payers"].get(q.payer_id) or {}
        s.seg("HL", 1, "", "20", 1)
        s.seg("NM1", "PR", "2", payer.get("name") or q.payer_id or "PAYER", "", "", "", "", "PI", q.payer_id or "UNKNOWN")
        s.seg("HL", 2, 1, "21", 1)
        s.seg("NM1", "41", "2", "INFORMATION RECEIVER", "", "", "", "", "46", reply.env.sender_id or "THERABRIDGE")
        s.seg("HL", 3, 2, "19", 1)
        s.seg("NM1", "1P", "2", (a.result.claim.billing_name if a.result else "") or "PROVIDER", "", "", "", "",
              "XX", q.provider_npi or "UNKNOWN")
        s.seg("HL", 4, 3, "22", 1 if q.dependent else 0)
        s.seg("NM1", "IL", "1", q.subscriber_last or "UNKNOWN", "" if q.dependent else q.patient_first, "", "", "",
              "MI", q.member_id or "UNKNOWN")
        if q.dependent:
            s.seg("HL", 5, 4, "23")
            s.seg("NM1", "QC", "1", q.patient_last or "UNKNOWN", q.patient_first)
        s.seg("TRN", "2", q.trace)
        status = (a.category, a.status, a.entity) if a.entity else (a.category, a.status)
        s.seg("STC", status, d, "", fmt_amount(a.billed) if a.billed is not None else
              (fmt_amount(q.billed) if q.billed is not None else ""),
              fmt_amount(a.paid) if a.paid is not None else "",
              a.adjudicated.strftime("%Y%m%d") if a.adjudicated else "")
        if a.result is not None and not a.result.rejected:
            s.seg("REF", "1K", a.result.icn)
        s.seg("REF", "EJ", q.patient_control_number or q.trace)
        if q.service_start:
            start, end = q.service_start.replace("-", ""), (q.service_end or q.service_start).replace("-", "")
            if start == end:
                s.seg("DTP", "472", "D8", start)
            else:
                s.seg("DTP", "472", "RD8", f"{start}-{end}")
        w.end_set(s)
    return w.text()


def _d8(value: date | None) -> str | None:
    return value.strftime("%Y%m%d") if value else None


def status_json(body: dict[str, Any], answer: StatusAnswer, *, payer_name: str) -> dict[str, Any]:
    """The CHC v3 claim status answer (``claims[].claimStatus``) for one claim."""
    encounter = body.get("encounter") or {}
    sub = body.get("subscriber") or {}
    status: dict[str, Any] = {
        "statusCategoryCode": answer.category, "statusCategoryCodeValue": answer.text,
        "statusCode": answer.status, "statusCodeValue": answer.text,
        "effectiveDate": encounter.get("endDateOfService") or encounter.get("beginningDateOfService"),
        "patientAccountNumber": encounter.get("patientAccountNumber"),
        "claimServiceBeginDate": encounter.get("beginningDateOfService"),
        "claimServiceEndDate": encounter.get("endDateOfService"),
    }
    if answer.entity:
        status["entityCode"] = answer.entity
    if answer.billed is not None:
        status["submittedAmount"] = fmt_amount(answer.billed)
    if answer.paid is not None:
        status["amountPaid"] = fmt_amount(answer.paid)
        status["paidDate"] = _d8(answer.adjudicated)
    if answer.result is not None and not answer.result.rejected:
        status["tradingPartnerClaimNumber"] = answer.result.icn
    return {"controlNumber": body.get("controlNumber"), "tradingPartnerServiceId": body.get("tradingPartnerServiceId"),
            "payer": {"organizationName": payer_name, "payerIdentification": body.get("tradingPartnerServiceId")},
            "subscriber": {"memberId": sub.get("memberId"), "firstName": sub.get("firstName"),
                           "lastName": sub.get("lastName")},
            "claims": [{"claimStatus": {k: v for k, v in status.items() if v is not None}}]}
