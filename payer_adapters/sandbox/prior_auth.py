"""The sandbox payer's answer to an electronic prior-authorization request (Da Vinci PAS style):
a Claim with ``use = preauthorization`` sent to ``Claim/$submit``, answered with a ClaimResponse.

Each requested item asks for a number of visits of a therapy discipline, or units of a CPT code
(``Claim.item.productOrService``, ``quantity``). The rules are the data file's
``prior_authorization`` section: a member the payer does not know, or no longer covers, is
denied; a member listed in ``pend_members`` is pended (``outcome = queued``: clinical review);
an item billing one of ``denied_codes`` is denied; every other item is approved up to the
payer's ``max_per_item``. An approval carries ``preAuthRef`` (the number claims quote) and
``preAuthPeriod`` (``period_days`` from the first requested date) and one ``addItem`` per approved
item with the count approved (``quantity`` and the ``benefit`` adjudication); an answer approving
less than asked is ``partial``. The same request (same key) gets the same number.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
from payer_adapters.sandbox.engine import Engine
from payer_adapters.sandbox.fhir_out import NS
from payer_adapters.x12.codes import ADJUDICATION

ERROR_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication-error"


def _requested_days(claim: dict[str, Any]) -> list[date]:
    found = []
    for text in [(claim.get("billablePeriod") or {}).get("start")] + [
            i.get("servicedDate") or (i.get("servicedPeriod") or {}).get("start") for i in claim.get("item") or []]:
        try:
            found.append(date.fromisoformat(str(text)[:10]))
        except ValueError:
            continue
    return found


def _coverage(claim: dict[str, Any], resources: list[dict[str, Any]]) -> dict[str, Any] | None:
    ins = next((i for i in claim.get("insurance") or [] if i.get("focal")), (claim.get("insurance") or [{}])[0])
    ref = str((ins.get("coverage") or {}).get("reference") or "")
    coverages = [r for r in resources if r.get("resourceType") == "Coverage"]
    return next((c for c in coverages if ref.endswith(f"/{c.get('id')}") or ref == f"urn:uuid:{c.get('id')}"),
                coverages[0] if coverages else None)


def decide(engine: Engine, claim: dict[str, Any], resources: list[dict[str, Any]], *, key: str | None,
           now: datetime) -> dict[str, Any]:
    """The ClaimResponse (use = preauthorization) answering ``claim``."""
    rules = engine.data.get("prior_authorization") or {}
    member_id = ids.member_id(_coverage(claim, resources)) or ""
    member = engine.member(member_id)
    payer = (rules.get("payers") or {}).get((member or {}).get("payer", ""), rules.get("default") or {})
    request_id = key or str(claim.get("id") or member_id)
    out: dict[str, Any] = {
        "resourceType": "ClaimResponse", "id": vocabulary.stable_id(NS, "prior-authorization", request_id),
        "status": "active", "use": "preauthorization", "created": now.isoformat(),
        "type": claim.get("type") or {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                                                  "code": "professional"}]},
        "patient": claim.get("patient") or {"display": "patient"},
        "insurer": claim.get("insurer") or {"display": (member or {}).get("payer", "payer")},
        "request": {"reference": f"Claim/{claim.get('id')}"} if claim.get("id") else {"display": "request"},
    }
    if claim.get("provider"):
        out["requestor"] = claim["provider"]
    if member is None or not member.get("active"):
        out.update(outcome="complete", disposition="Denied: the member has no active coverage with this payer",
                   error=[{"code": {"coding": [{"system": ERROR_SYSTEM, "code": "a001"}],
                                    "text": "member not found or not covered"}}])
        return out
    if member_id in (rules.get("pend_members") or ()):
        out.update(outcome="queued", disposition="Pended for clinical review; the decision follows")
        return out
    approved, errors, reduced = [], [], False
    for item in claim.get("item") or []:
        concept = item.get("productOrService") or {}
        code = next((c.get("code") for c in concept.get("coding") or []), None)
        asked = Decimal(str((item.get("quantity") or {}).get("value", 1)))
        if code in (rules.get("denied_codes") or ()):
            errors.append({"itemSequence": item.get("sequence"),
                           "code": {"coding": [{"system": ERROR_SYSTEM, "code": "a002"}],
                                    "text": f"{code} is not authorized by this payer"}})
            continue
        granted = min(asked, Decimal(int(payer.get("max_per_item", 12))))
        reduced = reduced or granted < asked
        approved.append({"itemSequence": [item.get("sequence")], "productOrService": concept,
                         "quantity": {"value": int(granted)},
                         "adjudication": [{"category": {"coding": [{"system": ADJUDICATION, "code": "benefit"}]},
                                           "value": int(granted)}]})
    if errors:
        out["error"] = errors
    if not approved:
        out.update(outcome="complete", disposition="Denied: no requested service is authorized")
        return out
    start = min(_requested_days(claim) or [now.date()])
    out.update(outcome="partial" if errors or reduced else "complete",
               disposition="Approved in part" if errors or reduced else "Approved",
               preAuthRef="PA" + vocabulary.stable_id(NS, "preauthref", request_id).replace("-", "")[:12].upper(),
               preAuthPeriod={"start": start.isoformat(),
                              "end": (start + timedelta(days=int(payer.get("period_days", 60)) - 1)).isoformat()},
               addItem=approved)
    return out
