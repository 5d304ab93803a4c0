"""The sandbox's FHIR surface: PAS-style ``Claim/$submit`` and ``$inquire``, eligibility, OAuth2.

* ``POST /oauth/token`` — client credentials: ``client_secret_basic``/``_post`` against the
  data file's ``oauth_clients``, or SMART Backend Services ``private_key_jwt`` (a
  ``client_assertion`` signed with a key in ``config.jwks[client_id]``, checked with joserfc).
* ``POST /fhir/Claim/$submit`` — a collection Bundle whose first entry is the Claim (Da Vinci PAS);
  answers a Bundle with the ClaimResponse first. The same Bundle.identifier again replays the
  first answer (no second claim). Members with ``pend_fhir_claims`` get ``outcome: queued``.
* ``POST /fhir/Claim/$inquire`` — Bundle with a Claim carrying the patient control number;
  answers a Bundle with the final ClaimResponse (after ``config.pended_inquiries`` pended ones).
* ``GET /fhir/ClaimResponse?identifier=<system>|<key>`` — read back by submission key.
* ``POST /fhir/CoverageEligibilityRequest/$submit`` — Bundle (request first) → response.
* ``POST /fhir/Communication`` — an appeal (category ``appeal``) about a claim this payer
  adjudicated (``appeals.py``): 201 with the Communication as filed; the decision, a ClaimResponse
  for the claim processed again, is the next ``$inquire`` answer for it. The same appeal again
  (same identifier) is answered the same and decided once.
4xx answers are OperationOutcomes; 5xx come only from fault injection (the PAS transport rules
make 4xx final and 5xx temporary).
"""
from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
from payer_adapters.sandbox import appeals
from payer_adapters.sandbox.engine import ClaimResult
from payer_adapters.sandbox.fhir_out import NS, claim_response, eligibility_response
from payer_adapters.sandbox.model import claim_from_fhir

FHIR_JSON = "application/fhir+json"


def outcome(status: int, code: str, text: str) -> JSONResponse:
    return JSONResponse({"resourceType": "OperationOutcome",
                         "issue": [{"severity": "error", "code": code, "diagnostics": text}]},
                        status_code=status, media_type=FHIR_JSON)


def _bundle(resources: list[dict[str, Any]], *, identifier: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    b: dict[str, Any] = {"resourceType": "Bundle", "type": "collection", "timestamp": now.isoformat(),
                         "entry": [{"fullUrl": f"urn:uuid:{r.get('id') or uuid.uuid4()}", "resource": r}
                                   for r in resources]}
    if identifier:
        b["identifier"] = identifier
    return b


def _entries(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict) and body.get("resourceType") == "Parameters":
        body = next((p.get("resource") for p in body.get("parameter") or [] if p.get("name") == "resource"), None)
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        return []
    out = []
    for e in body.get("entry") or []:
        r = e.get("resource")
        if isinstance(r, dict):
            if not r.get("id") and str(e.get("fullUrl", "")).startswith("urn:uuid:"):
                r = {**r, "id": e["fullUrl"].removeprefix("urn:uuid:")}
            out.append(r)
    return out


class FhirState:
    def __init__(self) -> None:
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.tokens_issued = 0
        self.by_key: dict[str, dict[str, Any]] = {}  # bundle identifier -> response Bundle
        self.pended: dict[str, dict[str, Any]] = {}  # pcn -> {"result", "request", "inquiries"}
        self.jti_seen: set[str] = set()


def router(app_state: Any) -> APIRouter:
    r = APIRouter()
    st: FhirState = app_state.fhir
    cfg = app_state.config
    engine = app_state.engine

    def authorized(request: Request) -> bool:
        if not app_state.require_auth:
            return True
        auth = request.headers.get("authorization", "")
        tok = auth.removeprefix("Bearer ").strip()
        exp = st.tokens.get(tok)
        return exp is not None and exp > time.monotonic()

    @r.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        form = dict(await request.form())
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
        assertion = form.get("client_assertion")
        ok = False
        if assertion and form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            ok, client_id = _check_assertion(str(assertion), cfg, st, str(request.url))
        elif client_id:
            known = cfg.data.get("oauth_clients", {}).get(client_id) or {}
            ok = bool(known.get("secret")) and secrets.compare_digest(str(known.get("secret")), str(secret or ""))
        if not ok:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        tok = secrets.token_urlsafe(24)
        st.tokens[tok] = time.monotonic() + cfg.token_ttl
        st.tokens_issued += 1
        return JSONResponse({"access_token": tok, "token_type": "Bearer", "expires_in": cfg.token_ttl,
                             "scope": form.get("scope", "")})

    @r.post("/fhir/Claim/$submit")
    async def submit(request: Request) -> JSONResponse:
        if not authorized(request):
            return outcome(401, "login", "missing or expired access token")
        body = await request.json()
        entries = _entries(body)
        if not entries or entries[0].get("resourceType") != "Claim":
            return outcome(400, "structure", "the first Bundle entry must be the Claim")
        key = ((body.get("identifier") or {}) if isinstance(body, dict) else {}).get("value")
        if key and key in st.by_key:
            return JSONResponse(st.by_key[key], media_type=FHIR_JSON)
        now = app_state.now()
        claim = claim_from_fhir(entries[0], entries[1:])
        if not claim.lines:
            return outcome(400, "required", "Claim.item is required")
        result = engine.process(claim, received=now.date(), salt=key or claim.pcn)
        if any(e.id == "unknown-original-claim" for e in result.edits):  # refused at the door
            engine.ledger.record("fhir", claim, "refused", key)
            return outcome(422, "business-rule", f"Claim.related.reference: {result.edits[0].text}")
        engine.ledger.record("fhir", claim, "rejected" if result.rejected else "adjudicated", key)
        member = engine.member(claim.member_id) or {}
        pend = bool(member.get("pend_fhir_claims")) and not result.rejected
        resp = claim_response(result, entries[0], now=now, queued=pend)
        if key:
            resp.setdefault("identifier", []).append({"system": vocabulary.SUBMISSION_KEY, "value": key})
        if pend:
            st.pended[claim.pcn] = {"result": result, "request": entries[0], "inquiries": 0, "key": key}
        out = _bundle([resp], identifier={"system": vocabulary.SUBMISSION_KEY, "value": key or claim.pcn}, now=now)
        if key:
            st.by_key[key] = out
        return JSONResponse(out, media_type=FHIR_JSON)

    @r.post("/fhir/Claim/$inquire")
    async def inquire(request: Request) -> JSONResponse:
        if not authorized(request):
            return outcome(401, "login", "missing or expired access token")
        entries = _entries(await request.json())
        claim = entries[0] if entries and entries[0].get("resourceType") == "Claim" else None
        pcn = ids.patient_control_number(claim)
        now = app_state.now()
        if not pcn:
            return outcome(400, "required", "the inquiry Claim needs the patient control number identifier")
        p = st.pended.get(pcn)
        if p is None:
            return JSONResponse(_bundle([], identifier=None, now=now), media_type=FHIR_JSON)
        p["inquiries"] += 1
        result: ClaimResult = p["result"]
        final = p["inquiries"] > cfg.pended_inquiries
        resp = claim_response(result, p["request"], now=now, queued=not final)
        if final and p.get("disposition"):
            resp["disposition"] = p["disposition"]
        if p.get("key"):
            resp.setdefault("identifier", []).append({"system": vocabulary.SUBMISSION_KEY, "value": p["key"]})
        return JSONResponse(_bundle([resp], identifier=None, now=now), media_type=FHIR_JSON)

    @r.get("/fhir/ClaimResponse")
    async def search(request: Request, identifier: str = "") -> JSONResponse:
        if not authorized(request):
            return outcome(401, "login", "missing or expired access token")
        system, _, value = identifier.rpartition("|")
        found = st.by_key.get(value) if system in ("", vocabulary.SUBMISSION_KEY) else None
        entries = [{"resource": found["entry"][0]["resource"], "search": {"mode": "match"}}] if found else []
        return JSONResponse({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries},
                            media_type=FHIR_JSON)

    @r.post("/fhir/Communication")
    async def appeal(request: Request) -> JSONResponse:
        if not authorized(request):
            return outcome(401, "login", "missing or expired access token")
        body = await request.json()
        if not isinstance(body, dict) or body.get("resourceType") != "Communication":
            return outcome(400, "structure", "send a Communication")
        if not any(c.get("code") == "appeal" for cat in body.get("category") or [] for c in cat.get("coding") or []):
            return outcome(422, "business-rule", "Communication.category: only appeals (code appeal) are accepted")
        key = appeals.package_key(body)
        seen = key in engine.ledger.appeals
        try:
            decided = appeals.decide(engine, body)
        except LookupError as err:
            return outcome(422, "business-rule", f"Communication.about: {err}")
        if not seen:
            about = next((a.get("reference") for a in body.get("about") or [] if a.get("reference")), "")
            req = {"id": about.rpartition("/")[2] or None, "patient": body.get("subject"),
                   "insurer": (body.get("recipient") or [None])[0]}
            st.pended[decided.result.claim.pcn] = {
                "result": decided.result, "request": {k: v for k, v in req.items() if v}, "key": None,
                "inquiries": cfg.pended_inquiries,
                "disposition": "Appeal overturned: processed again and paid" if decided.decision == "overturn"
                else "Appeal upheld: the denial stands"}
        filed = {**body, "id": vocabulary.stable_id(NS, "appeal", key or decided.result.icn), "status": "completed"}
        return JSONResponse(filed, status_code=201, media_type=FHIR_JSON)

    @r.post("/fhir/CoverageEligibilityRequest/$submit")
    async def eligibility(request: Request) -> JSONResponse:
        if not authorized(request):
            return outcome(401, "login", "missing or expired access token")
        entries = _entries(await request.json())
        if not entries or entries[0].get("resourceType") != "CoverageEligibilityRequest":
            return outcome(400, "structure", "the first Bundle entry must be the CoverageEligibilityRequest")
        req = entries[0]
        cov_ref = ((req.get("insurance") or [{}])[0].get("coverage") or {}).get("reference", "")
        cov = next((e for e in entries if e.get("resourceType") == "Coverage" and
                    (cov_ref.endswith(f"/{e.get('id')}") or cov_ref == f"urn:uuid:{e.get('id')}")), None)
        if cov is None:
            cov = next((e for e in entries if e.get("resourceType") == "Coverage"), None)
        if cov is None:
            return outcome(400, "required", "the Coverage must be in the Bundle")
        sts = [c.get("code") for i in req.get("item") or [] for c in (i.get("category") or {}).get("coding") or []]
        ben = engine.benefits(ids.member_id(cov) or "", [s for s in sts if s])
        return JSONResponse(eligibility_response(ben, req, engine.ledger, now=app_state.now()), media_type=FHIR_JSON)

    return r


def _check_assertion(assertion: str, cfg: Any, st: FhirState, audience: str) -> tuple[bool, str | None]:
    """SMART Backend Services client authentication: iss = sub = client_id, aud = token URL,
    exp within 5 minutes, jti not reused; signature by a key in the client's JWKS."""
    try:
        payload = assertion.split(".")[1]
        client_id = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))).get("iss")
    except (IndexError, ValueError, AttributeError):
        return False, None
    if not client_id or client_id not in cfg.jwks:
        return False, None
    try:
        verified = jwt.decode(assertion, KeySet.import_key_set(cfg.jwks[client_id]),
                              algorithms=["RS384", "ES384", "RS256", "ES256"])
    except (JoseError, ValueError):
        return False, None
    if verified.claims.get("sub") != client_id:
        return False, None
    c = verified.claims
    now = time.time()
    if c.get("aud") != audience or not isinstance(c.get("exp"), (int, float)) or not now < c["exp"] <= now + 300:
        return False, None
    jti = c.get("jti")
    if not jti or jti in st.jti_seen:
        return False, None
    st.jti_seen.add(jti)
    return True, client_id
