"""``clearinghouse-json``: the CHC v3 JSON APIs that Stedi and Optum share.

* Claims: ``POST {base_url}/medicalnetwork/professionalclaims/v3/submission`` with the
  professional-claims JSON mapped from our FHIR Claim (:func:`claim_json`) and an ``Idempotency-Key``
  header = our key. The body is a pure function of the package and the key (``controlNumber``
  is derived from the key), so a resend with the same key is byte-identical and the
  clearinghouse replays its first answer instead of creating a second claim (a changed body
  answers 422 ``REQUEST_CHANGED`` → :class:`PayerRejection`; 409 in-flight → transient).
* Read back: the API has no lookup by key, so :meth:`find_submission` returns None and the core
  resends with the same key (replayed; ``Receipt.replayed`` from ``Idempotent-Replayed``).
  Stedi keeps keys 24 h: a resend after that window must go through a person.
* Eligibility: ``POST {base_url}/medicalnetwork/eligibility/v3`` → CoverageEligibilityResponse
  (benefit codes: active ``1``/``6``, copay ``B``, coinsurance ``A``, deductible ``C``, visit
  limits ``F`` with ``VS``; ``errors[]`` AAA codes → ``CoverageEligibilityResponse.error``).
* Answers: ``GET {base_url}/medicalnetwork/reports/v2`` lists reports; each 277/835 is fetched
  from ``…/{fileName}/{277|835}`` (X12 text → content type ``x12``; JSON → ``json``, read by
  ``payer_adapters.chc_reports`` when posted) and acknowledged with
  ``POST …/{fileName}/acknowledge`` once stored.
* Claim status: ``POST {base_url}/medicalnetwork/claimstatus/v2`` (``chc_status.py``) → the same
  ClaimResponse a 277 becomes; no claim in the answer = no claim on file.
Auth: ``api_key`` (``Authorization: Key <key>``, Stedi) or OAuth2 client credentials
(``auth: client_secret`` with ``token_url``, ``client_id``, ``client_secret``; Optum; ``oauth.py``).
"""
from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import httpx

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
from payer_adapters.contract import (
    Capabilities, ClaimPackage, EligibilityPackage, EligibilityResult, InboundMessage, Receipt, StatusResult, utcnow,
)
from payer_adapters.chc_status import PATH as STATUS_PATH, claim_parties, person as _person, status_request, status_response
from payer_adapters.errors import PayerRejection, json_body, operation_outcome, raise_for_http_status, send
from payer_adapters.oauth import TokenSource
from payer_adapters.x12.cob import PriorAdjustment, PriorPayer, prior_payers
from payer_adapters.x12.codes import BENEFIT_TYPE, SERVICE_TYPE_SYSTEM
from payer_adapters.x12.control import ControlNumbers
from payer_adapters.x12.encode_837p import claim_frequency
from payer_adapters.x12.errors import EncodeError
from payer_adapters.x12.resources import NUCC, ResourceIndex

CAPABILITIES = Capabilities(realtime_eligibility=True, batch_claims=False, batch_size=1)
#: Unambiguous Coverage.type codes (v3-ActCode) → claimFilingCode when no X12 filing coding exists;
#: otherwise CI, as the 837P encoder does for SBR09 (x12/README.md).
ACT_CODE_FILING = {"WCBPOL": "WC", "AUTOPOL": "AM"}


def _d8(value: str | None) -> str:
    return (value or "")[:10].replace("-", "")


def _amount(v: Any) -> str:
    return format(Decimal(str(v)).quantize(Decimal("0.01")), "f")


def control_number(key: str) -> str:
    """A 9-digit ``controlNumber`` that is a function of the idempotency key."""
    return str(int(hashlib.sha256(key.encode()).hexdigest()[:12], 16) % 10**9).zfill(9)


def _address(r: dict[str, Any] | None) -> dict[str, str]:
    a = ((r or {}).get("address") or [{}])[0]
    return {k: v for k, v in {"address1": (a.get("line") or [""])[0], "city": a.get("city", ""),
                              "state": a.get("state", ""), "postalCode": a.get("postalCode", "")}.items() if v}


def _filing_code(coverage: dict[str, Any] | None) -> str:
    for c in ((coverage or {}).get("type") or {}).get("coding") or []:
        if c.get("system") == vocabulary.X12_CLAIM_FILING_INDICATOR:
            return str(c["code"])
    for c in ((coverage or {}).get("type") or {}).get("coding") or []:
        if c.get("code") in ACT_CODE_FILING:
            return ACT_CODE_FILING[c["code"]]
    return "CI"


def claim_json(pkg: ClaimPackage, *, key: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The CHC v3 professional-claims body for one claim."""
    claim = pkg.claim
    parties = claim_parties(pkg)
    payer, payer_id, ins = parties.payer, parties.payer_id, parties.insurance
    coverage, patient, billing = parties.coverage, parties.patient, parties.billing
    rendering = referring = None
    for ct in claim.get("careTeam") or []:
        role = next((c.get("code") for c in (ct.get("role") or {}).get("coding") or []), "")
        prac = pkg.find(ct.get("provider"))
        npi = ids.npi(prac, ct.get("provider")) or ""
        entry = {"npi": npi, **_person(prac)}
        tax = next((c.get("code") for c in (ct.get("qualification") or {}).get("coding") or []
                    if c.get("system") == NUCC), None)
        if role == "primary" and rendering is None:
            rendering = {"providerType": "RenderingProvider", **entry, **({"taxonomyCode": tax} if tax else {})}
        elif role == "referring" and referring is None:
            referring = {"providerType": "ReferringProvider", **entry}
    try:
        priors = prior_payers(claim, ResourceIndex([claim, *pkg.resources]))
    except EncodeError as err:
        raise PayerRejection(f"the claim's prior payers cannot be read: {err.message}", operation_outcome(
            [{"code": "required", "diagnostics": err.message, "expression": ["Claim.insurance"]}])) from None
    sequence = SEQUENCE.get(int(ins.get("sequence", 1)), "P") if priors else "P"
    subscriber = {"memberId": ids.member_id(coverage) or "", "paymentResponsibilityLevelCode": sequence,
                  **_person(patient), "gender": {"male": "M", "female": "F"}.get(str((patient or {}).get("gender")), "U"),
                  "dateOfBirth": _d8((patient or {}).get("birthDate")), "address": _address(patient)}
    group = next((c.get("value") for c in (coverage or {}).get("class") or []
                  if any(x.get("code") == "group" for x in (c.get("type") or {}).get("coding") or [])), None)
    if group:
        subscriber["groupNumber"] = group
    lines = []
    total = Decimal(0)
    for item in claim.get("item") or []:
        code = ((item.get("productOrService") or {}).get("coding") or [{}])[0].get("code", "")
        qty = Decimal(str((item.get("quantity") or {}).get("value", 1)))
        net = (item.get("net") or {}).get("value")
        charge = Decimal(str(net)) if net is not None else Decimal(str((item.get("unitPrice") or {}).get("value", 0))) * qty
        total += charge
        line: dict[str, Any] = {
            "serviceDate": _d8(item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start")),
            "providerControlNumber": next((e.get("valueString") for e in item.get("extension") or []
                                           if e.get("url") == vocabulary.LINE_CONTROL_NUMBER), str(item.get("sequence", ""))),
            "professionalService": {
                "procedureIdentifier": "HC", "procedureCode": code,
                "procedureModifiers": [c.get("code") for m in item.get("modifier") or [] for c in m.get("coding") or []][:4],
                "lineItemChargeAmount": _amount(charge), "measurementUnit": "UN", "serviceUnitCount": format(qty.normalize(), "f"),
                "compositeDiagnosisCodePointers": {"diagnosisCodePointers": [str(s) for s in item.get("diagnosisSequence") or [1]][:4]},
            }}
        if rendering:
            line["renderingProvider"] = rendering
        adjudicated = [_line_adjudication(p, item, code) for p in priors if int(item.get("sequence", 0)) in p.lines]
        if adjudicated:
            line["lineAdjudicationInformation"] = adjudicated
        lines.append(line)
    pos = next((c.get("code") for item in claim.get("item") or []
                for c in (item.get("locationCodeableConcept") or {}).get("coding") or []), "11")
    diagnoses = []
    for n, d in enumerate(sorted(claim.get("diagnosis") or [], key=lambda x: x.get("sequence", 0))[:12]):
        code = ((d.get("diagnosisCodeableConcept") or {}).get("coding") or [{}])[0].get("code", "")
        diagnoses.append({"diagnosisTypeCode": "ABK" if n == 0 else "ABF", "diagnosisCode": code.replace(".", "")})
    info: dict[str, Any] = {
        "claimFilingCode": _filing_code(coverage), "patientControlNumber": pkg.patient_control_number,
        "claimChargeAmount": _amount(total), "placeOfServiceCode": pos,
        "claimFrequencyCode": "1", "signatureIndicator": "Y", "planParticipationCode": "A",
        "benefitsAssignmentCertificationIndicator": "Y", "releaseInformationCode": "Y",
        "healthCareCodeInformation": diagnoses, "serviceLines": lines,
    }
    frequency, original = claim_frequency(claim)
    info["claimFrequencyCode"] = frequency
    auth = next((p for i in claim.get("insurance") or [] for p in i.get("preAuthRef") or []), None)
    supplemental = {k: v for k, v in (("priorAuthorizationNumber", auth), ("claimControlNumber", original)) if v}
    if supplemental:  # the payer's number of the claim a replacement (7) or void (8) stands for
        info["claimSupplementalInformation"] = supplemental
    if priors:
        info["otherSubscriberInformation"] = [_other_subscriber(p, pkg, patient) for p in priors]
    body: dict[str, Any] = {
        "controlNumber": control_number(key),
        "tradingPartnerServiceId": (settings.get("payer_ids") or {}).get(payer_id, payer_id),
        "tradingPartnerName": str((payer or {}).get("name", "")),
        "usageIndicator": settings.get("usage_indicator", "T"),
        "submitter": settings.get("submitter") or {"organizationName": "THERABRIDGE", "contactInformation":
                                                   {"name": "BILLING OFFICE", "phoneNumber": "8005550100"}},
        "receiver": {"organizationName": str((payer or {}).get("name", ""))},
        "subscriber": subscriber,
        "billing": {"providerType": "BillingProvider", "npi": ids.npi(billing, claim.get("provider")) or "",
                    "employerId": (ids.tin(billing) or "").replace("-", ""),
                    "organizationName": str((billing or {}).get("name", "")), "address": _address(billing)},
        "claimInformation": info,
    }
    if rendering:
        body["rendering"] = rendering
    if referring:
        body["referring"] = referring
    return body


SEQUENCE = {1: "P", 2: "S", 3: "T"}
RELATIONSHIP = {"self": "18", "spouse": "01", "child": "19"}


def _adjustments(adjustments: list[PriorAdjustment]) -> list[dict[str, Any]]:
    """CAS as CHC v3 JSON: one entry per group code with its (reason, amount) details."""
    groups: dict[str, list[dict[str, str]]] = {}
    for a in adjustments:
        groups.setdefault(a.group, []).append({"adjustmentReasonCode": a.reason, "adjustmentAmount": _amount(a.amount)})
    return [{"adjustmentGroupCode": g, "adjustmentDetails": d} for g, d in groups.items()]


def _other_subscriber(prior: PriorPayer, pkg: ClaimPackage, patient: dict[str, Any] | None) -> dict[str, Any]:
    """A prior payer (837P loop 2320/2330A/2330B) as ``otherSubscriberInformation``."""
    cov = prior.coverage
    relationship = next((c.get("code") for c in (cov.get("relationship") or {}).get("coding") or []), "self")
    person = pkg.find(cov.get("subscriber"))
    if person is None or person.get("resourceType") not in ("Patient", "RelatedPerson"):
        person = patient
    name = _person(person)
    out: dict[str, Any] = {
        "paymentResponsibilityLevelCode": SEQUENCE.get(prior.sequence, "P"),
        "individualRelationshipCode": RELATIONSHIP.get(str(relationship), "G8"),
        "claimFilingIndicatorCode": _filing_code(cov),
        "benefitsAssignmentCertificationIndicator": "Y", "releaseOfInformationCode": "Y",
        "payerPaidAmount": _amount(prior.paid), "remainingPatientLiability": _amount(prior.patient_liability),
        "otherSubscriberName": {"otherInsuredQualifier": "1", "otherInsuredLastName": name["lastName"],
                                "otherInsuredFirstName": name["firstName"], "otherInsuredIdentifierTypeCode": "MI",
                                "otherInsuredIdentifier": ids.member_id(cov) or ""},
        "otherPayerName": {"otherPayerOrganizationName": prior.payer_name, "otherPayerIdentifierTypeCode": "PI",
                           "otherPayerIdentifier": prior.payer_id},
    }
    if prior.adjustments:
        out["claimLevelAdjustments"] = _adjustments(prior.adjustments)
    if prior.claim_number:
        out["otherPayerName"]["otherPayerSecondaryIdentifier"] = [{"qualifier": "F8", "identifier": prior.claim_number}]
    if not prior.lines and prior.date:
        out["otherPayerName"]["otherPayerAdjudicationOrPaymentDate"] = _d8(prior.date)
    return out


def _line_adjudication(prior: PriorPayer, item: dict[str, Any], code: str) -> dict[str, Any]:
    """A prior payer's decision on one line (837P loop 2430) as ``lineAdjudicationInformation``."""
    found = prior.lines[int(item.get("sequence", 0))]
    out: dict[str, Any] = {
        "otherPayerPrimaryIdentifier": prior.payer_id, "serviceLinePaidAmount": _amount(found.paid),
        "serviceIdQualifier": "HC", "procedureCode": code,
        "procedureModifier": [c.get("code") for m in item.get("modifier") or [] for c in m.get("coding") or []][:4],
        "paidServiceUnitCount": format(Decimal(str((item.get("quantity") or {}).get("value", 1))).normalize(), "f"),
        "adjudicationOrPaymentDate": _d8(prior.date),
    }
    if found.adjustments:
        out["claimAdjustmentInformation"] = _adjustments(found.adjustments)
    return out


def eligibility_json(pkg: EligibilityPackage, settings: dict[str, Any]) -> dict[str, Any]:
    """The CHC v3 eligibility body."""
    req = pkg.request
    coverage = pkg.find(((req.get("insurance") or [{}])[0]).get("coverage"))
    patient = pkg.find(req.get("patient"))
    provider = pkg.find(req.get("provider"))
    payer = pkg.find(req.get("insurer"))
    payer_id = ids.payer_id(payer, req.get("insurer")) or ""
    sts = [c.get("code") for i in req.get("item") or [] for c in (i.get("category") or {}).get("coding") or []]
    return {
        "controlNumber": control_number(str(req.get("id", ""))),
        "tradingPartnerServiceId": (settings.get("payer_ids") or {}).get(payer_id, payer_id),
        "provider": {"organizationName": str((provider or {}).get("name", "")),
                     "npi": ids.npi(provider, req.get("provider")) or ""},
        "subscriber": {"memberId": ids.member_id(coverage) or "", **_person(patient),
                       "dateOfBirth": _d8((patient or {}).get("birthDate"))},
        "encounter": {"serviceTypeCodes": [s for s in sts if s] or ["30"], "dateOfService": _d8(req.get("servicedDate"))},
    }


def eligibility_to_fhir(body: dict[str, Any], pkg: EligibilityPackage) -> dict[str, Any]:
    """CHC v3 eligibility answer → CoverageEligibilityResponse (benefit codes as in the module docstring)."""
    req = pkg.request
    out: dict[str, Any] = {
        "resourceType": "CoverageEligibilityResponse", "status": "active",
        "purpose": req.get("purpose") or ["benefits"], "patient": req.get("patient"),
        "created": utcnow().isoformat(), "insurer": req.get("insurer"),
        "request": {"reference": f"CoverageEligibilityRequest/{req.get('id')}"},
    }
    if req.get("id"):
        out["id"] = f"{req['id']}-response"
    if req.get("servicedDate"):
        out["servicedDate"] = req["servicedDate"]
    errors = body.get("errors") or []
    if errors:
        out["outcome"] = "error"
        out["error"] = [{"code": {"coding": [{"system": "https://x12.org/codes/aaa-reject-reason",
                                              "code": str(e.get("code", ""))}], "text": str(e.get("description", ""))}}
                        for e in errors]
        return out
    out["outcome"] = "complete"
    infos = body.get("benefitsInformation") or []
    active = any(b.get("code") == "1" for b in infos) and not any(b.get("code") == "6" for b in infos)
    items: dict[str, dict[str, Any]] = {}
    for b in infos:
        for st in b.get("serviceTypeCodes") or []:
            if st == "30" or b.get("code") in ("1", "6", "C"):
                continue
            item = items.setdefault(st, {"category": {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": st}]}, "benefit": []})
            if b.get("authOrCertIndicator") in ("Y", "N"):
                item["authorizationRequired"] = b["authOrCertIndicator"] == "Y"
            for extra in b.get("additionalInformation") or []:
                if extra.get("description"):
                    item["description"] = extra["description"]
            code = b.get("code")
            if code == "B" and b.get("benefitAmount"):
                item["benefit"].append({"type": {"coding": [{"system": BENEFIT_TYPE, "code": "copay"}]},
                                        "allowedMoney": {"value": float(b["benefitAmount"]), "currency": "USD"}})
            elif code == "A" and b.get("benefitPercent"):
                item["benefit"].append({"type": {"coding": [{"system": BENEFIT_TYPE, "code": "copay-percent"}]},
                                        "allowedUnsignedInt": int(round(float(b["benefitPercent"]) * 100))})
            elif code == "F":
                q = next((d for d in b.get("benefitsServiceDelivery") or [] if d.get("quantityQualifierCode") == "VS"), None)
                if q is None:
                    continue
                visit = next((x for x in item["benefit"] if x["type"]["coding"][0]["code"] == "visit"), None)
                if visit is None:
                    visit = {"type": {"coding": [{"system": BENEFIT_TYPE, "code": "visit"}]}}
                    item["benefit"].append(visit)
                if b.get("timeQualifierCode") == "29":
                    visit["_remaining"] = int(float(q["quantity"]))
                else:
                    visit["allowedUnsignedInt"] = int(float(q["quantity"]))
    for item in items.values():
        for b in item["benefit"]:
            remaining = b.pop("_remaining", None)
            if remaining is not None and "allowedUnsignedInt" in b:
                b["usedUnsignedInt"] = max(b["allowedUnsignedInt"] - remaining, 0)
        if not item["benefit"]:
            del item["benefit"]
    insurance: dict[str, Any] = {"coverage": (req.get("insurance") or [{}])[0].get("coverage"), "inforce": active}
    if items and active:
        insurance["item"] = list(items.values())
    out["insurance"] = [insurance]
    return out


class ClearinghouseJsonAdapter:
    kind = "clearinghouse-json"

    def __init__(self, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
        if not settings.get("base_url"):
            raise ValueError("clearinghouse-json settings need 'base_url'")
        if not settings.get("api_key") and settings.get("auth", "none") == "none":
            raise ValueError("clearinghouse-json settings need 'api_key' or an OAuth 'auth' mode")
        self.s = settings
        self.base = settings["base_url"].rstrip("/")
        self.http = http
        self.timeout = float(settings.get("timeout", 30))
        self.tokens = TokenSource(settings, http) if not settings.get("api_key") else None
        self.capabilities = capabilities(settings)

    async def _headers(self) -> dict[str, str]:
        if self.s.get("api_key"):
            return {"Authorization": f"Key {self.s['api_key']}"}
        return await self.tokens.header()  # type: ignore[union-attr]

    async def _call(self, method: str, path: str, what: str, *, timeout: float | None = None,
                    **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), **(await self._headers())}
        resp = await send(self.http, method, f"{self.base}{path}", what, headers=headers,
                          timeout=timeout or self.timeout, **kwargs)
        raise_for_http_status(resp, what)
        return resp

    async def submit_claims(self, pkgs: list[ClaimPackage], *, idempotency_key: str) -> Receipt:
        if len(pkgs) != 1:
            raise ValueError("clearinghouse-json submits one claim per call (capabilities.batch_size == 1)")
        body = claim_json(pkgs[0], key=idempotency_key, settings=self.s)
        resp = await self._call("POST", "/medicalnetwork/professionalclaims/v3/submission", "claim submission",
                                json=body, headers={"Idempotency-Key": idempotency_key})
        answer = json_body(resp, "claim submission")
        if answer.get("status") == "ERROR":
            raise PayerRejection("clearinghouse rejected the claim", operation_outcome([{
                "code": "business-rule", "diagnostics": str(e.get("description", "")),
                "details": {"text": str(e.get("code", ""))}} for e in answer.get("errors") or []] or
                [{"code": "business-rule", "diagnostics": "status ERROR"}]))
        ref = answer.get("claimReference") or {}
        return Receipt(submission_id=str(ref.get("correlationId") or idempotency_key), idempotency_key=idempotency_key,
                       transaction_id=ref.get("correlationId"), control_numbers={"controlNumber": body["controlNumber"]},
                       patient_control_numbers=[pkgs[0].patient_control_number], raw_response=answer,
                       replayed=resp.headers.get("Idempotent-Replayed", "").lower() == "true")

    async def find_submission(self, idempotency_key: str) -> Receipt | None:
        return None  # no lookup by key: resend with the same key (see the module docstring)

    async def check_eligibility(self, pkg: EligibilityPackage, *, timeout: float) -> EligibilityResult:
        resp = await self._call("POST", "/medicalnetwork/eligibility/v3", "eligibility",
                                json=eligibility_json(pkg, self.s), timeout=timeout)
        return EligibilityResult(response=eligibility_to_fhir(json_body(resp, "eligibility"), pkg), queued=False)

    async def fetch_responses(self) -> list[InboundMessage]:
        listing = json_body(await self._call("GET", "/medicalnetwork/reports/v2", "report list"), "report list")
        out = []
        for rep in listing.get("reports") or []:
            name, rtype = str(rep.get("fileName", "")), str(rep.get("reportType", ""))
            if not name or rtype not in ("277", "835"):
                continue
            resp = await self._call("GET", f"/medicalnetwork/reports/v2/{name}/{rtype}", "report fetch")
            data = resp.content
            is_x12 = data.lstrip()[:3] == b"ISA"
            out.append(InboundMessage(name=name, data=data, content_type="x12" if is_x12 else "json",
                                      received_at=utcnow(), kind="277CA" if rtype == "277" else "835"))
        return out

    async def acknowledge(self, msg: InboundMessage) -> None:
        await self._call("POST", f"/medicalnetwork/reports/v2/{msg.name}/acknowledge", "report acknowledge")

    async def inquire(self, claim_ref: dict[str, Any]) -> dict[str, Any] | None:
        return None

    async def claim_status(self, pkg: ClaimPackage, *, key: str) -> StatusResult:
        """Real-time claim status (``chc_status.py``); a read, so asking again is harmless."""
        body = status_request(pkg, control_number=control_number(key), settings=self.s)
        resp = await self._call("POST", STATUS_PATH, "claim status", json=body)
        return StatusResult(response=status_response(json_body(resp, "claim status"), pkg))


def capabilities(settings: dict[str, Any]) -> Capabilities:
    """The same for every connection: real-time eligibility, one claim per call."""
    return CAPABILITIES


def factory(settings: dict[str, Any], *, http: httpx.AsyncClient,
            control_numbers: ControlNumbers) -> ClearinghouseJsonAdapter:
    return ClearinghouseJsonAdapter(settings, http)
