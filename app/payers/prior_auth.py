"""Electronic prior authorization: ``POST /fhir/Claim/{id}/$submit`` on a Claim whose ``use`` is
``preauthorization`` asks the payer for an authorization (Da Vinci PAS: the Claim and every
resource it references in one Bundle to the payer's ``Claim/$submit``), and the payer's answer
is stored as the authorization (a ``ClaimResponse`` with ``use = preauthorization``) in the
authorization ledger (``app.claims.authorizations``): an approval with ``preAuthRef`` and
``preAuthPeriod`` is in force, and the next claims of the patient quote it and consume it.

Only payers reached over a FHIR API can be asked this way (the connection's adapter has the
``prior_authorization`` capability); X12 278 is not offered, so for any other payer the answer
is 422 and the biller records the payer's answer by hand (``PUT /fhir/ClaimResponse``). A
request is sent under a key derived from the Claim's version: sent again unchanged, the payer
replays its first decision instead of deciding twice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app import directory
from app.fhir.errors import FhirError
from app.fhir.store import Reader, TenantStore, Unit, Version
from app.payers.calls import call_payer_async
from app.payers.outcomes import put
from app.payers.packages import claim_packages
from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id
from payer_adapters.contract import ClaimPackage
from payer_adapters.registry import capabilities


@dataclass
class Prepared:
    """A prior-authorization request ready to send: the Claim, its payer connection, the package."""

    claim: Version
    link: directory.PayerLink
    package: ClaimPackage
    key: str


def is_request(claim: dict[str, Any]) -> bool:
    """Whether ``claim`` asks for an authorization rather than payment."""
    return claim.get("use") == "preauthorization"


def prepare(reader: Reader, claim_id: str) -> Prepared:
    """Read the request and find its FHIR payer; 422 (nothing sent) when it cannot be sent."""
    version = reader.read("Claim", claim_id)
    claim = version.resource()
    if not is_request(claim):
        raise FhirError(422, "business-rule", f"Claim/{claim_id} is not a prior-authorization request",
                        expression=["Claim.use"])
    if claim.get("status") != "active":
        raise FhirError(422, "business-rule", f"Only an active request is sent; Claim/{claim_id} is "
                        f"{claim.get('status')}", expression=["Claim.status"])
    if not claim.get("item"):
        raise FhirError(422, "required", "Name the services to authorize (Claim.item: a therapy discipline's "
                        "visits or a CPT code's units, with the quantity asked for)", expression=["Claim.item"])
    link = directory.for_insurer(reader.conn, reader.tenant_id, claim.get("insurer"))
    if link is None:
        raise FhirError(422, "business-rule", "No payer connection is registered for this request's insurer; "
                        "add one with `therabridge payers add` or POST /admin/payers", expression=["Claim.insurer"])
    if not capabilities(link.kind, link.settings).prior_authorization:
        raise FhirError(422, "not-supported", f"Electronic prior authorization needs a FHIR payer (a fhir-payer "
                        f"connection, Da Vinci PAS); this payer is reached over {link.kind} and X12 278 is not "
                        "offered. Ask the payer by its portal or phone and record its answer as a ClaimResponse "
                        "with use = preauthorization.", expression=["Claim.insurer"])
    key = stable_id(SERVER_NAMESPACE, "prior-authorization-request", claim_id, version.version_id).replace("-", "")
    return Prepared(version, link, claim_packages(reader, [claim])[0], key)


async def send(ts: TenantStore, prepared: Prepared) -> dict[str, Any]:
    """Ask the payer (no transaction held): its ClaimResponse. Raises what the adapter raises."""
    return await call_payer_async(ts, prepared.link, "claims", lambda adapter: adapter.request_authorization(
        prepared.package, idempotency_key=prepared.key))


def authorization_id(claim_id: str) -> str:
    """The stored authorization answering ``Claim/claim_id`` (one per request: a later answer,
    after a pended one, replaces it)."""
    return stable_id(SERVER_NAMESPACE, "authorization", claim_id)


def store_answer(unit: Unit, claim: dict[str, Any], answer: dict[str, Any]) -> Version:
    """Record the payer's decision as the authorization of the request's patient: pointed at
    our Patient, Claim, payer and practice (the payer echoes what it was sent, perhaps by URL)."""
    auth = {k: v for k, v in answer.items() if k not in ("id", "meta", "text", "contained")}
    auth.update(resourceType="ClaimResponse", id=authorization_id(claim["id"]), use="preauthorization",
                request={"reference": f"Claim/{claim['id']}"}, patient=claim["patient"])
    auth.setdefault("status", "active")
    auth.setdefault("outcome", "error")
    for mine, theirs in (("insurer", "insurer"), ("provider", "requestor")):
        if claim.get(mine):
            auth[theirs] = claim[mine]
    auth.setdefault("created", unit.now.isoformat())
    if not auth.get("type") and claim.get("type"):
        auth["type"] = claim["type"]
    put(unit, auth)
    return unit.read("ClaimResponse", auth["id"])
