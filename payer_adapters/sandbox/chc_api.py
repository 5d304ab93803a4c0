"""The sandbox's CHC v3 JSON surface (the dialect Stedi and Optum share).

* ``POST /medicalnetwork/eligibility/v3`` — eligibility JSON → ``benefitsInformation[]``
  (codes 1/6 active/inactive, B copay, A coinsurance, C deductible, F visit limits with
  ``VS``), ``errors[]`` with AAA code 75 for an unknown member (HTTP 200, as the payer answered).
* ``POST /medicalnetwork/professionalclaims/v3/submission`` — the claim JSON with an
  ``Idempotency-Key`` header: same key and body → the first answer again (header
  ``Idempotent-Replayed: true``), no second claim; same key, different body → 422
  ``REQUEST_CHANGED``. Missing required fields → 400 with ``errors[]`` (an edit rejection).
  The 277CA and, for accepted claims, the 835 become reports.
* ``GET /medicalnetwork/reports/v2`` lists unacknowledged reports; ``GET …/{name}/277`` and
  ``…/{name}/835`` return the report as CHC v3 JSON (converted from the X12 by ``report_json.py``,
  as Optum's convert endpoints do), ``GET …/{name}`` the X12 itself; ``POST …/{name}/acknowledge``
  marks one collected.
* ``POST /medicalnetwork/claimstatus/v2`` — claim status (the 276/277 as JSON): ``subscriber``,
  ``providers[]``, ``encounter{patientAccountNumber, beginningDateOfService, endDateOfService,
  submittedAmount}`` → ``claims[].claimStatus{statusCategoryCode, statusCode, entityCode,
  submittedAmount, amountPaid, paidDate, tradingPartnerClaimNumber…}`` from the payer's record of
  the claims it received (``claim_status.py``): not on file → A4:35.
Auth: ``Authorization: Key <api key>`` (or ``Bearer``) with a key from ``chc_api_keys``.
"""
from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from payer_adapters.sandbox.claim_status import status_json, status_of
from payer_adapters.sandbox.engine import Benefits, money
from payer_adapters.sandbox.faults import lost
from payer_adapters.sandbox.model import claim_from_chc
from payer_adapters.sandbox.report_json import convert_report
from payer_adapters.sandbox.x12_out import InboundEnvelope, ReplyWriter, write_277ca, write_835
from payer_adapters.x12.resources import fmt_amount

REQUIRED = ("controlNumber", "tradingPartnerServiceId", "subscriber", "billing", "claimInformation")


def _err(status: int, code: str, text: str, action: str = "Please Correct and Resubmit") -> JSONResponse:
    return JSONResponse({"status": "ERROR", "errors": [{"code": code, "description": text, "followupAction": action}]},
                        status_code=status)


def benefits_json(ben: Benefits, ledger: Any) -> list[dict[str, Any]]:
    if not ben.active:
        return [{"code": "6", "name": "Inactive", "serviceTypeCodes": ["30"]}]
    m = ben.member
    out: list[dict[str, Any]] = [{"code": "1", "name": "Active Coverage", "serviceTypeCodes": ["30", *ben.service_types],
                                  "planCoverage": m.get("plan", "")}]
    d = m.get("deductible") or {}
    if d.get("total"):
        out.append({"code": "C", "name": "Deductible", "serviceTypeCodes": ["30"], "timeQualifierCode": "23",
                    "benefitAmount": fmt_amount(money(d["total"])), "coverageLevelCode": "IND"})
        out.append({"code": "C", "name": "Deductible", "serviceTypeCodes": ["30"], "timeQualifierCode": "29",
                    "benefitAmount": fmt_amount(ben.deductible_remaining(ledger)), "coverageLevelCode": "IND"})
    for st in ben.service_types:
        auth = "Y" if ben.auth_required(st) else "N"
        common = {"serviceTypeCodes": [st], "authOrCertIndicator": auth, "inPlanNetworkIndicatorCode": "Y",
                  "coverageLevelCode": "IND"}
        if m.get("copay"):
            out.append({"code": "B", "name": "Co-Payment", "timeQualifierCode": "27",
                        "benefitAmount": fmt_amount(money(m["copay"])), **common})
        if m.get("coinsurance"):
            out.append({"code": "A", "name": "Co-Insurance", "timeQualifierCode": "27",
                        "benefitPercent": str(Decimal(str(m["coinsurance"]))), **common})
        total, used = ben.visits(st, ledger)
        if total is not None:
            extra = [{"description": m["visit_limit_note"]}] if m.get("visit_limit_note") else []
            out.append({"code": "F", "name": "Limitations", "timeQualifierCode": "23",
                        "benefitsServiceDelivery": [{"quantityQualifierCode": "VS", "quantity": str(total)}],
                        "additionalInformation": extra, **common})
            out.append({"code": "F", "name": "Limitations", "timeQualifierCode": "29",
                        "benefitsServiceDelivery": [{"quantityQualifierCode": "VS", "quantity": str(max(total - used, 0))}],
                        **common})
    return out


class ChcState:
    def __init__(self) -> None:
        self.idempotency: dict[str, tuple[str, dict[str, Any]]] = {}  # key -> (body hash, response)
        #: name -> {"type": "277"|"835", "text": X12, "json": bytes once converted (or as injected),
        #: "acknowledged": bool}
        self.reports: dict[str, dict[str, Any]] = {}

    def add_report(self, name: str, rtype: str, *, text: str = "", body: bytes | None = None) -> None:
        """List a report: the X12 ``text`` (its JSON is converted on first fetch), or a JSON ``body``
        served byte for byte — how a test puts an unreadable report in front of the server."""
        self.reports[name] = {"type": rtype, "text": text, "json": body, "acknowledged": False}

    def redeliver(self, name: str) -> str:
        """List a report again under a new name (a new transaction id, the same content): the
        clearinghouse re-sending an ERA. Raises KeyError for an unknown report."""
        rep = self.reports[name]
        n = 2
        while f"{name}.again{n}" in self.reports:
            n += 1
        again = f"{name}.again{n}"
        self.add_report(again, rep["type"], text=rep["text"], body=None if rep["text"] else rep["json"])
        return again

    def report_json(self, name: str, sender_id: str) -> bytes:
        """The JSON of a report, converted from its X12 on first fetch (not at submission, so the
        claim endpoint stays as fast as before) and then served byte for byte."""
        rep = self.reports[name]
        if rep.get("json") is None:
            rep["json"] = json.dumps(convert_report(rep["text"], transaction_id=name, sender_id=sender_id)).encode()
        return rep["json"]


def router(app_state: Any) -> APIRouter:
    r = APIRouter()
    st: ChcState = app_state.chc
    engine = app_state.engine
    cfg = app_state.config

    def authorized(request: Request) -> bool:
        if not app_state.require_auth:
            return True
        auth = request.headers.get("authorization", "")
        key = auth.split(" ", 1)[-1].strip()
        return key in cfg.data.get("chc_api_keys", [])

    @r.post("/medicalnetwork/eligibility/v3")
    async def eligibility(request: Request) -> JSONResponse:
        if not authorized(request):
            return _err(401, "401", "Unauthorized", "Please Correct and Resubmit")
        body = await request.json()
        sub = body.get("subscriber") or {}
        if not sub.get("memberId") or not body.get("tradingPartnerServiceId"):
            return _err(400, "33", "Input Errors: subscriber.memberId and tradingPartnerServiceId are required")
        sts = list((body.get("encounter") or {}).get("serviceTypeCodes") or [])
        ben = engine.benefits(str(sub["memberId"]), sts)
        out: dict[str, Any] = {"controlNumber": body.get("controlNumber"),
                               "tradingPartnerServiceId": body["tradingPartnerServiceId"],
                               "subscriber": {"memberId": sub["memberId"], "firstName": sub.get("firstName"),
                                              "lastName": sub.get("lastName")}}
        if not ben.found:
            out["errors"] = [{"code": "75", "description": "Subscriber/Insured Not Found",
                              "followupAction": "Please Correct and Resubmit"}]
        else:
            out["planStatus"] = [{"statusCode": "1" if ben.active else "6",
                                  "status": "Active Coverage" if ben.active else "Inactive",
                                  "serviceTypeCodes": ben.service_types}]
            out["benefitsInformation"] = benefits_json(ben, engine.ledger)
        return JSONResponse(out)

    @r.post("/medicalnetwork/professionalclaims/v3/submission")
    async def submit(request: Request) -> JSONResponse:
        if not authorized(request):
            return _err(401, "401", "Unauthorized")
        raw = await request.body()
        key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(raw).hexdigest()
        if key and key in st.idempotency:
            seen_digest, seen = st.idempotency[key]
            if seen_digest != digest:
                return JSONResponse({"code": "REQUEST_CHANGED", "message": "The request body differs from the "
                                     "original request with this Idempotency-Key"}, status_code=422)
            return JSONResponse(seen, headers={"Idempotent-Replayed": "true"})
        try:
            body = json.loads(raw)
        except ValueError:
            return _err(400, "33", "Request body is not JSON")
        missing = [f for f in REQUIRED if not body.get(f)]
        lines = (body.get("claimInformation") or {}).get("serviceLines") or []
        if missing or not lines:
            return _err(400, "33", "Input Errors: missing " + ", ".join(missing or ["claimInformation.serviceLines"]))
        claim = claim_from_chc(body)
        now = app_state.now()
        correlation = "SBXC" + digest[:16].upper()
        if lost(request.scope):  # taken in and forgotten: no record, no reports
            return JSONResponse(_accepted(body, claim, correlation))
        result = engine.process(claim, received=now.date(), salt=key or digest)
        if any(e.id == "unknown-original-claim" for e in result.edits):  # refused at the door
            engine.ledger.record("chc", claim, "refused", key)
            return _err(400, "33", f"Input Errors: claimSupplementalInformation.claimControlNumber: "
                        f"{result.edits[0].text}")
        engine.ledger.record("chc", claim, "rejected" if result.rejected else "adjudicated", key, result)
        env = InboundEnvelope(sender_id="THERABRIDGE", receiver_id=cfg.data["clearinghouse"]["id"],
                              isa_control=correlation[-9:], gs_sender="THERABRIDGE",
                              gs_receiver=cfg.data["clearinghouse"]["id"], gs_version="005010X222A1",
                              gs_functional_id="HC", sets=[("837", "0001", "005010X222A1")])
        reply = ReplyWriter(env, now, app_state.counter)
        st.add_report(f"{correlation}-277", "277", text=write_277ca(
            reply, [result], batch_id=correlation, received=now, config=engine.data))
        if not result.rejected:
            st.add_report(f"{correlation}-835", "835", text=write_835(
                reply, [result], trace_seed=correlation[4:14], config=engine.data))
        out = _accepted(body, claim, correlation)
        if key:
            st.idempotency[key] = (digest, out)
        return JSONResponse(out)

    @r.post("/medicalnetwork/claimstatus/v2")
    async def claim_status(request: Request) -> JSONResponse:
        """Real-time claim status (the 276/277 pair as JSON): the claim is found by
        ``encounter.patientAccountNumber`` (our patient control number) in the payer's record."""
        if not authorized(request):
            return _err(401, "401", "Unauthorized")
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _err(400, "33", "Request body is not JSON")
        pcn = str((body.get("encounter") or {}).get("patientAccountNumber") or "")
        if not pcn or not body.get("tradingPartnerServiceId") or not (body.get("subscriber") or {}).get("memberId"):
            return _err(400, "33", "Input Errors: tradingPartnerServiceId, subscriber.memberId and "
                        "encounter.patientAccountNumber are required")
        payer = engine.payer(str(body["tradingPartnerServiceId"])) or {}
        answer = status_of(engine, pcn)
        return JSONResponse(status_json(body, answer, payer_name=str(payer.get("name", ""))))

    @r.get("/medicalnetwork/reports/v2")
    async def reports(request: Request) -> JSONResponse:
        if not authorized(request):
            return _err(401, "401", "Unauthorized")
        items = [{"fileName": name, "reportType": rep["type"]} for name, rep in st.reports.items()
                 if not rep["acknowledged"]]
        return JSONResponse({"reports": items})

    @r.get("/medicalnetwork/reports/v2/{name}/{rtype}")
    async def report(name: str, rtype: str, request: Request) -> Response:
        if not authorized(request):
            return _err(401, "401", "Unauthorized")
        rep = st.reports.get(name)
        if rep is None or rep["type"] != rtype:
            return _err(404, "404", "report not found", "Resubmission Not Allowed")
        return Response(st.report_json(name, cfg.data["clearinghouse"]["id"]), media_type="application/json")

    @r.get("/medicalnetwork/reports/v2/{name}")
    async def report_x12(name: str, request: Request) -> Response:
        if not authorized(request):
            return _err(401, "401", "Unauthorized")
        rep = st.reports.get(name)
        if rep is None or not rep["text"]:
            return _err(404, "404", "report not found", "Resubmission Not Allowed")
        return Response(rep["text"], media_type="application/edi-x12")

    @r.post("/medicalnetwork/reports/v2/{name}/acknowledge")
    async def ack(name: str, request: Request) -> JSONResponse:
        if not authorized(request):
            return _err(401, "401", "Unauthorized")
        rep = st.reports.get(name)
        if rep is None:
            return _err(404, "404", "report not found", "Resubmission Not Allowed")
        rep["acknowledged"] = True
        return JSONResponse({"fileName": name, "acknowledged": True})

    return r


def _accepted(body: dict[str, Any], claim: Any, correlation: str) -> dict[str, Any]:
    """The submission endpoint's SUCCESS answer."""
    return {"status": "SUCCESS", "controlNumber": body.get("controlNumber"),
            "tradingPartnerServiceId": body.get("tradingPartnerServiceId"),
            "claimReference": {"correlationId": correlation, "patientControlNumber": claim.pcn,
                               "payerId": claim.payer_id,
                               "serviceLines": [{"lineItemControlNumber": ln.control} for ln in claim.lines]},
            "meta": {"traceId": correlation.lower()}}
