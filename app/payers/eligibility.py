"""Eligibility ``$submit``: real-time where the adapter can (answer inside
``THERABRIDGE_ELIGIBILITY_TIMEOUT`` seconds, a total deadline: a payer trickling its answer is
cut off like a silent one), otherwise queued (X12 270 → the 271 is posted when collected; a
timed-out real-time call is retried by the outbox, each try within
``THERABRIDGE_PAYER_DEADLINE_ELIGIBILITY``)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.fhir.errors import FhirError
from app.fhir.store import TenantStore, Unit, Version
from app.jobs import enqueue
from app import directory
from app.payers.outcomes import put
from app.payers.packages import eligibility_package
from fhir_mappings.vocabulary import ELIGIBILITY_TRACE, SERVER_NAMESPACE, stable_id
from app.payers.calls import call_payer, call_payer_async
from app.payers.runtime import runtime
from fhir_mappings import identifiers
from payer_adapters.contract import EligibilityPackage, EligibilityResult
from payer_adapters.errors import PayerRejection
from payer_adapters.registry import capabilities

KIND = "check-eligibility"


@dataclass
class Prepared:
    request: Version
    link: directory.PayerLink
    package: EligibilityPackage


def prepare(unit: Unit, *, body: dict[str, Any] | None = None, request_id: str | None = None) -> Prepared:
    """Store (or read) the request, give it a trace number, and find its payer connection."""
    if body is not None:
        if body.get("resourceType") != "CoverageEligibilityRequest":
            raise FhirError(400, "invalid", "Send a CoverageEligibilityRequest in the body")
        resource = {k: v for k, v in body.items() if k not in ("id", "meta")}
        current = None
    else:
        current = read = unit.read("CoverageEligibilityRequest", request_id or "")
        resource = current.resource()
    if not any(i.get("system") == ELIGIBILITY_TRACE for i in resource.get("identifier") or []):
        # The request's own identifier when it fits TRN02 (the resolver's rule), else a new one;
        # kept under our system too, which is how the 271 finds its request.
        trace = identifiers.trace_number(resource) or uuid.uuid4().hex[:20].upper()
        resource["identifier"] = [*(resource.get("identifier") or []), {"system": ELIGIBILITY_TRACE, "value": trace}]
        current = None
    link = directory.for_insurer(unit.conn, unit.tenant_id, resource.get("insurer"))
    if link is None:
        raise FhirError(422, "business-rule", "No payer connection is registered for this request's insurer",
                        expression=["CoverageEligibilityRequest.insurer"])
    if current is None:
        if body is not None:
            stored = unit.create(resource).version
        else:  # the trace number added to the version read, never over a change made since
            stored = unit.update("CoverageEligibilityRequest", request_id or "", resource,
                                 if_match=read.version_id).version
    else:
        stored = current
    return Prepared(stored, link, eligibility_package(unit, stored.resource()))


def store_response(unit: Unit, request: dict[str, Any], response: dict[str, Any]) -> Version:
    response = dict(response)
    response["id"] = stable_id(SERVER_NAMESPACE, "eligibility-response", request["id"])
    response["request"] = {"reference": f"CoverageEligibilityRequest/{request['id']}"}
    for key in ("patient", "insurer"):
        if request.get(key) and not response.get(key):
            response[key] = request[key]
    link_to_request(response, request)
    put(unit, response)
    return unit.read("CoverageEligibilityResponse", response["id"])


def link_to_request(response: dict[str, Any], request: dict[str, Any]) -> None:
    """Point the answer at the request's Patient and Coverage by id (a 271 names them by member
    id only): claim edits find the newest answer per Coverage, and the answer is searchable by
    patient."""
    if (request.get("patient") or {}).get("reference"):
        response["patient"] = {**(response.get("patient") or {}), "reference": request["patient"]["reference"]}
    insured = [i for i in request.get("insurance") or [] if (i.get("coverage") or {}).get("reference")]
    focal = next((i for i in insured if i.get("focal")), insured[0] if insured else None)
    if focal is None:
        return
    for ins in response.get("insurance") or []:
        ins["coverage"] = {**(ins.get("coverage") or {}), "reference": focal["coverage"]["reference"]}


def queue(unit: Unit, request_id: str) -> None:
    enqueue(unit, KIND, {"request": request_id}, dedupe_key=f"{KIND}:{request_id}:{uuid.uuid4().hex}")


async def check_now(ts: TenantStore, prepared: Prepared) -> EligibilityResult:
    timeout = runtime().settings.eligibility_timeout
    return await call_payer_async(ts, prepared.link, "eligibility",
                                  lambda adapter: adapter.check_eligibility(prepared.package, timeout=timeout),
                                  seconds=timeout)


def realtime(link: directory.PayerLink) -> bool:
    """Whether the connection's adapter answers eligibility inside the request."""
    return capabilities(link.kind, link.settings).realtime_eligibility


def run_check(ts: TenantStore, payload: dict[str, Any]) -> None:
    """A queued eligibility check: ask the payer with no transaction held, then store the answer."""
    with ts.reading() as reader:
        current = reader.current("CoverageEligibilityRequest", payload["request"])
        if current is None or current.deleted:
            return
        request = current.resource()
        link = directory.for_insurer(reader.conn, ts.tenant_id, request.get("insurer"))
        if link is None:
            return
        pkg = eligibility_package(reader, request)
    timeout = runtime().settings.payer_deadline("eligibility")
    try:
        result = call_payer(ts, link, "eligibility", lambda adapter: adapter.check_eligibility(pkg, timeout=timeout))
    except PayerRejection as rejection:
        with ts.unit() as unit:
            store_response(unit, request, {
                "resourceType": "CoverageEligibilityResponse", "status": "active",
                "purpose": request.get("purpose") or ["benefits"], "created": unit.now.isoformat(),
                "outcome": "error", "error": [{"code": {"text": "payer rejected the request"}}],
                "disposition": "; ".join(i.get("diagnostics", "") for i in
                                         rejection.outcome.get("issue", []))[:1000] or "rejected"})
        return
    if result.response is not None:
        with ts.unit() as unit:
            store_response(unit, request, result.response)
