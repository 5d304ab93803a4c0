"""``fhir-payer``: a payer's FHIR API in the Da Vinci PAS style.

* Claims: ``POST {base_url}/Claim/$submit`` with a collection Bundle whose first entry is the
  Claim, followed by every resource it references, each once; ``Bundle.identifier`` is the
  idempotency key (system ``vocabulary.SUBMISSION_KEY``), the "submitted transaction
  identifier" the payer uses to spot a resend. The answer Bundle's first entry is the
  ClaimResponse → ``Receipt.synchronous_response``. ``outcome == "queued"`` means pended: the
  core calls :meth:`FhirPayerAdapter.inquire` later (``Claim/$inquire``). An
  ``outcome == "error"`` ClaimResponse is an answer, not an exception: the core records it like
  a 277CA rejection.
* Prior authorization: the same ``Claim/$submit`` with a Claim whose ``use`` is
  ``preauthorization`` (the PAS request Bundle); the answer's first ClaimResponse is the
  payer's decision (approved with ``preAuthRef``/``preAuthPeriod`` and the visits or units per
  ``addItem``, pended with ``outcome = queued``, or denied) → :meth:`request_authorization`.
* Read back: ``GET {base_url}/ClaimResponse?identifier=<key system>|<key>``.
* Claim status (:meth:`FhirPayerAdapter.claim_status`): ``Claim/$inquire`` for any submitted
  claim; an answer without a ClaimResponse means the payer has no claim on file.
* Appeals: ``POST {base_url}/Communication`` (category ``appeal``, about the claim, the letter and
  its enclosures as attachments); the payer's decision is a later ``Claim/$inquire`` answer.
* Eligibility: ``POST {base_url}/CoverageEligibilityRequest/$submit`` (Bundle, request first) →
  CoverageEligibilityResponse within ``timeout``.
* Auth: ``oauth.py`` (none, client secret, or SMART Backend Services ``private_key_jwt``); a 401
  drops the cached token and retries once.
HTTP 4xx → :class:`PayerRejection` with the payer's OperationOutcome; 5xx, timeouts and resets
→ :class:`TransientPayerError` (the PAS transport rules; ``errors.py``).
"""
from __future__ import annotations

from typing import Any

import httpx

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
from payer_adapters.contract import (
    Capabilities, ClaimPackage, EligibilityPackage, EligibilityResult, InboundMessage, Receipt, StatusResult,
)
from payer_adapters.errors import PayerRejection, TransientPayerError, json_body, raise_for_http_status, send
from payer_adapters.oauth import TokenSource
from payer_adapters.x12.control import ControlNumbers
from payer_adapters.x12.encode_837p import claim_frequency

FHIR_JSON = "application/fhir+json"
CAPABILITIES = Capabilities(realtime_eligibility=True, batch_claims=False, batch_size=1, inquire=True, appeals=True,
                            prior_authorization=True)


def _full_url(base: str, r: dict[str, Any]) -> str:
    return f"{base.rstrip('/')}/{r.get('resourceType')}/{r.get('id')}"


def _first_resource(body: dict[str, Any], rtype: str) -> dict[str, Any] | None:
    if body.get("resourceType") == rtype:
        return body
    for e in body.get("entry") or []:
        r = e.get("resource") or {}
        if r.get("resourceType") == rtype:
            return r
    return None


def _wire(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource as the payer reads it: a void Claim (frequency 8) goes as a ``cancelled``
    Claim whose ``related`` (relationship prior) quotes the payer's number; a replacement keeps
    that ``related`` entry as it is."""
    if resource.get("resourceType") != "Claim" or claim_frequency(resource)[0] != "8":
        return resource
    return {**resource, "status": "cancelled"}


class FhirPayerAdapter:
    kind = "fhir-payer"

    def __init__(self, settings: dict[str, Any], http: httpx.AsyncClient) -> None:
        if not settings.get("base_url"):
            raise ValueError("fhir-payer settings need 'base_url'")
        self.base = settings["base_url"].rstrip("/")
        self.client_base = settings.get("client_base_url", "https://therabridge.invalid/fhir")
        self.http = http
        self.timeout = float(settings.get("timeout", 30))
        self.tokens = TokenSource(settings, http)
        self.capabilities = capabilities(settings)

    async def _call(self, method: str, path: str, what: str, *, json: Any = None, params: Any = None,
                    timeout: float | None = None) -> httpx.Response:
        for attempt in (1, 2):
            headers = {"Accept": FHIR_JSON, **(await self.tokens.header())}
            if json is not None:
                headers["Content-Type"] = FHIR_JSON
            resp = await send(self.http, method, f"{self.base}{path}", what, json=json, params=params,
                              headers=headers, timeout=timeout or self.timeout)
            if resp.status_code == 401 and attempt == 1 and self.tokens.mode != "none":
                self.tokens.forget()
                continue
            raise_for_http_status(resp, what)
            return resp
        raise AssertionError("unreachable")

    def _bundle(self, resources: list[dict[str, Any]], *, key: str | None, timestamp: str) -> dict[str, Any]:
        seen: set[tuple[str, str]] = set()
        entries = []
        for r in resources:
            k = (r.get("resourceType", ""), r.get("id", ""))
            if k in seen:
                continue
            seen.add(k)
            entries.append({"fullUrl": _full_url(self.client_base, r), "resource": r})
        b: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "timestamp": timestamp, "entry": entries}
        if key:
            b["identifier"] = {"system": vocabulary.SUBMISSION_KEY, "value": key}
        return b

    async def submit_claims(self, pkgs: list[ClaimPackage], *, idempotency_key: str) -> Receipt:
        if len(pkgs) != 1:
            raise ValueError("fhir-payer submits one claim per call (capabilities.batch_size == 1)")
        pkg = pkgs[0]
        cr = await self._submit(pkg, [_wire(r) for r in pkg.all_resources()], idempotency_key, "Claim/$submit")
        return Receipt(submission_id=str(cr.get("id") or idempotency_key), idempotency_key=idempotency_key,
                       transaction_id=idempotency_key, patient_control_numbers=[pkg.patient_control_number],
                       synchronous_response=cr)

    async def request_authorization(self, pkg: ClaimPackage, *, idempotency_key: str) -> dict[str, Any]:
        """Send a prior-authorization request (``pkg.claim.use == "preauthorization"``) and return
        the payer's ClaimResponse. The key makes a resend return the first decision."""
        if pkg.claim.get("use") != "preauthorization":
            raise ValueError("request_authorization sends a Claim with use = preauthorization")
        return await self._submit(pkg, pkg.all_resources(), idempotency_key, "Claim/$submit (preauthorization)")

    async def _submit(self, pkg: ClaimPackage, resources: list[dict[str, Any]], key: str, what: str) -> dict[str, Any]:
        """``Claim/$submit`` of the package's Bundle: the payer's ClaimResponse (an
        OperationOutcome answer is a PayerRejection; an answer without a ClaimResponse, transient)."""
        bundle = self._bundle(resources, key=key, timestamp=str(pkg.claim.get("created") or "1970-01-01T00:00:00Z"))
        resp = await self._call("POST", "/Claim/$submit", what, json=bundle)
        body = json_body(resp, what)
        if body.get("resourceType") == "OperationOutcome":
            raise PayerRejection("Claim/$submit answered with an OperationOutcome", body, status=resp.status_code)
        cr = _first_resource(body, "ClaimResponse")
        if cr is None:
            raise TransientPayerError(f"{what}: no ClaimResponse in the answer")
        return cr

    async def find_submission(self, idempotency_key: str) -> Receipt | None:
        resp = await self._call("GET", "/ClaimResponse", "ClaimResponse search",
                                params={"identifier": f"{vocabulary.SUBMISSION_KEY}|{idempotency_key}"})
        cr = _first_resource(json_body(resp, "ClaimResponse search"), "ClaimResponse")
        if cr is None:
            return None
        pcn = ids.patient_control_number(cr.get("request"))
        return Receipt(submission_id=str(cr.get("id") or idempotency_key), idempotency_key=idempotency_key,
                       transaction_id=idempotency_key, patient_control_numbers=[pcn] if pcn else [],
                       synchronous_response=cr, replayed=True)

    async def inquire(self, claim_ref: dict[str, Any]) -> dict[str, Any] | None:
        """``claim_ref``: the Claim dict (its patient-control-number identifier, patient,
        insurer and provider are sent; PAS Inquiry Request Bundle). Returns the newest
        ClaimResponse, or None when the payer has nothing for it."""
        claim = claim_ref.get("claim", claim_ref)
        inquiry = {k: claim[k] for k in ("resourceType", "id", "identifier", "status", "type", "use", "patient",
                                         "created", "insurer", "provider", "priority", "insurance") if k in claim}
        bundle = self._bundle([inquiry, *claim_ref.get("resources", [])], key=None,
                              timestamp=str(claim.get("created") or "1970-01-01T00:00:00Z"))
        resp = await self._call("POST", "/Claim/$inquire", "Claim/$inquire", json=bundle)
        body = json_body(resp, "Claim/$inquire")
        return _first_resource(body, "ClaimResponse")

    async def claim_status(self, pkg: ClaimPackage, *, key: str) -> StatusResult:
        """Claim status through ``Claim/$inquire``: the payer's ClaimResponse for the claim, None
        (no claim on file) when it answers with none."""
        return StatusResult(response=await self.inquire({"claim": pkg.claim, "resources": pkg.resources}))

    async def send_appeal(self, communication: dict[str, Any]) -> dict[str, Any]:
        """File an appeal: the Communication as the payer filed it (4xx: PayerRejection)."""
        resp = await self._call("POST", "/Communication", "Communication (appeal)", json=communication)
        body = json_body(resp, "Communication (appeal)")
        if body.get("resourceType") != "Communication":
            raise PayerRejection("the appeal was answered with something else than a Communication", body,
                                 status=resp.status_code)
        return body

    async def check_eligibility(self, pkg: EligibilityPackage, *, timeout: float) -> EligibilityResult:
        bundle = self._bundle(pkg.all_resources(), key=None,
                              timestamp=str(pkg.request.get("created") or "1970-01-01T00:00:00Z"))
        resp = await self._call("POST", "/CoverageEligibilityRequest/$submit",
                                "CoverageEligibilityRequest/$submit", json=bundle, timeout=timeout)
        body = json_body(resp, "CoverageEligibilityRequest/$submit")
        found = _first_resource(body, "CoverageEligibilityResponse")
        if found is None:
            raise TransientPayerError("eligibility: no CoverageEligibilityResponse in the answer")
        return EligibilityResult(response=found, queued=False)

    async def fetch_responses(self) -> list[InboundMessage]:
        return []  # answers arrive inline or through $inquire

    async def acknowledge(self, msg: InboundMessage) -> None:
        return None


def capabilities(settings: dict[str, Any]) -> Capabilities:
    """The same for every connection: real-time eligibility, one claim per call, ``$inquire``."""
    return CAPABILITIES


def factory(settings: dict[str, Any], *, http: httpx.AsyncClient, control_numbers: ControlNumbers) -> FhirPayerAdapter:
    return FhirPayerAdapter(settings, http)
