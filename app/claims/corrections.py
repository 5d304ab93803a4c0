"""Corrections and voids of claims the payer already holds, and the payer's claim number they need.

The payer numbers every claim it takes in (835 CLP07, 277CA REF*1K, a FHIR ClaimResponse
identifier); posting records that number on our Claim as a server-owned identifier (system
``vocabulary.PAYER_CLAIM_NUMBER``). A replacement (837P CLM05-3 ``7``) or a void (``8``) must
quote it (REF*F8), so a correction is a new Claim whose ``related`` names the claim it replaces
(relationship ``prior``) and carries that number in ``related.reference``: filled here, from the
prior claim, for a regenerated visit and for a biller's own corrected Claim alike. A void is a
new Claim too (``$void``): a copy of the prior claim with its charges unchanged, marked by the
server-owned extension ``…/claim-frequency`` = ``8``; the prior claim becomes ``cancelled`` when
the payer accepts the void (``lifecycle.move``).

A claim the payer rejected before adjudicating it (999 or 277CA) has no number: its correction
goes out as a new original (frequency ``1``), linked with relationship ``associated``.
"""
from __future__ import annotations

from typing import Any, Callable

from app.claims.lifecycle import UNSUBMITTED, lifecycle, rank, set_lifecycle, without_server_owned
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.queries import find_resources
from app.fhir.store import Unit, Version
from fhir_mappings.vocabulary import (
    CLAIM_FREQUENCY, PATIENT_CONTROL_NUMBER, PAYER_CLAIM_NUMBER, SERVER_NAMESPACE, stable_id,
)

RELATED = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
VOID = "8"


def payer_number(claim: dict[str, Any] | None) -> str | None:
    """The payer's claim number recorded on our ``claim`` (only our system: a Claim's other
    identifiers are the practice's, never the payer's)."""
    return next((i.get("value") for i in (claim or {}).get("identifier") or []
                 if i.get("system") == PAYER_CLAIM_NUMBER and i.get("value")), None)


def record_payer_number(unit: Unit, claim_id: str, number: str | None, *, adjudicated: bool) -> None:
    """Record the payer's claim number on ``Claim/claim_id`` (compare-and-set); see
    ``payer_number_change``."""
    if number:
        unit.modify("Claim", claim_id, payer_number_change(number, adjudicated=adjudicated))


def payer_number_change(number: str | None, *, adjudicated: bool) -> Callable[[dict[str, Any]], bool]:
    """The change that records the payer's claim number on a claim, for ``Unit.modify`` (alone,
    or with a lifecycle move in one write). The number of an adjudication (835 CLP07, a final
    ClaimResponse) replaces one an acknowledgment gave (277CA REF*1K); an acknowledgment never
    replaces a number already recorded."""
    def change(claim: dict[str, Any]) -> bool:
        current = payer_number(claim)
        if not number or current == number or (current and not adjudicated):
            return False
        claim["identifier"] = [i for i in claim.get("identifier") or [] if i.get("system") != PAYER_CLAIM_NUMBER] + [
            {"system": PAYER_CLAIM_NUMBER, "value": number}]
        return True

    return change


def is_void(claim: dict[str, Any]) -> bool:
    return any(e.get("url") == CLAIM_FREQUENCY and e.get("valueCode") == VOID for e in claim.get("extension") or [])


def _relationship(code: str) -> dict[str, Any]:
    return {"coding": [{"system": RELATED, "code": code}]}


def _has(rel: dict[str, Any], code: str) -> bool:
    return any(c.get("code") == code for c in (rel.get("relationship") or {}).get("coding") or [])


def _unknown_number(prior: dict[str, Any], expression: str) -> FhirError:
    return FhirError(422, "business-rule", f"The payer's claim number of Claim/{prior['id']} is not known yet "
                     f"({lifecycle(prior)}): a replacement or void must quote it (REF*F8), and it arrives with the "
                     "payer's 277CA (REF*1K) or 835 (CLP07). Try again once the payer has answered.",
                     expression=[expression])


def related_to(prior: dict[str, Any], expression: str = "Claim.related.reference") -> dict[str, Any]:
    """The ``related`` entry of a correction of ``prior``: relationship ``prior`` with the payer's
    number, or ``associated`` when the payer rejected ``prior`` unnumbered or it was voided (the
    correction is then a new original).
    ``FhirError`` 422 when the payer holds ``prior`` but has not numbered it yet."""
    ref = {"reference": f"Claim/{prior['id']}"}
    number = payer_number(prior)
    if prior.get("status") == "cancelled":  # voided at the payer: what follows is a new original
        return {"claim": ref, "relationship": _relationship("associated")}
    if number:
        return {"claim": ref, "relationship": _relationship("prior"),
                "reference": {"system": PAYER_CLAIM_NUMBER, "value": number}}
    if lifecycle(prior) == "rejected":
        return {"claim": ref, "relationship": _relationship("associated")}
    raise _unknown_number(prior, expression)


def latest(sent_claims: list[dict[str, Any]], every: list[dict[str, Any]]) -> dict[str, Any]:
    """Of a visit's claims sent to the payer, the one a new correction replaces: the last that no
    other claim of the visit names in ``related`` (the others were replaced already)."""
    named = {((r.get("claim") or {}).get("reference")) for c in every for r in c.get("related") or []}
    current = [c for c in sent_claims if f"Claim/{c['id']}" not in named]
    return (current or sent_claims)[-1]


def sent(claim: dict[str, Any]) -> bool:
    """Whether ``claim`` has left for the payer (submitted or any answer since)."""
    return rank(lifecycle(claim)) >= rank("submitted")


def link_client_correction(unit: Unit, claim: dict[str, Any]) -> None:
    """A client's Claim whose ``related.claim`` names a claim we sent is a correction of it: its
    ``related`` entry gets the payer's number from that claim (whatever the client wrote there),
    and it is billed under its own patient control number (the payer reverses the original
    under the original's). 422 when the payer has not numbered the named claim yet."""
    for n, rel in enumerate(claim.get("related") or []):
        target = reference_target(((rel.get("claim") or {}).get("reference")) or "")
        if not target or target[0] != "Claim" or target[1] == claim.get("id"):
            continue
        found = unit.current("Claim", target[1])
        prior = found.resource() if found is not None and not found.deleted else None
        if prior is None or not sent(prior):
            continue
        if not _has(rel, "prior") and not rel.get("reference"):
            continue  # merely associated
        claim["related"][n] = {**rel, **related_to(prior, f"Claim.related[{n}].reference")}
        pcn = {i.get("value") for i in prior.get("identifier") or [] if i.get("system") == PATIENT_CONTROL_NUMBER}
        claim["identifier"] = [i for i in claim.get("identifier") or []
                               if not (i.get("system") == PATIENT_CONTROL_NUMBER and i.get("value") in pcn)]
        if not claim["identifier"]:
            del claim["identifier"]


def replaced_by(unit: Unit, claim: dict[str, Any]) -> str | None:
    """The id of a correction of ``claim`` (a Claim of the same visit naming it as ``prior``)."""
    visits = {ref.get("reference") for item in claim.get("item") or [] for ref in item.get("encounter") or []}
    for visit in sorted(v for v in visits if v):
        for other in find_resources(unit, "Claim", [("encounter", visit)]):
            if other["id"] != claim["id"] and not is_void(other) and any(
                    _has(r, "prior") and (r.get("claim") or {}).get("reference") == f"Claim/{claim['id']}"
                    for r in other.get("related") or []):
                return str(other["id"])
    return None


def void_id(claim_id: str) -> str:
    """The id of the void of ``Claim/claim_id``: one void per claim, however often it is asked for."""
    return stable_id(SERVER_NAMESPACE, "void", claim_id)


def void(unit: Unit, claim_id: str) -> tuple[Version, bool]:
    """The void of ``Claim/claim_id`` (a frequency-8 copy quoting the payer's number), stored
    ``clean`` for the caller to queue: (the void Claim, whether it was created now). Asking
    again returns the same void. 422, nothing written, for a claim that never reached the
    payer, one rejected before adjudication, a void itself, one a correction replaces, or one
    the payer has not numbered."""
    unit.lock("claim-void", claim_id)
    prior = unit.read("Claim", claim_id).resource()
    existing = unit.current("Claim", void_id(claim_id))
    if existing is not None and not existing.deleted:
        return existing, False
    if is_void(prior):
        raise FhirError(422, "business-rule", f"Claim/{claim_id} is itself a void; it cannot be voided",
                        expression=["Claim"])
    if prior.get("status") == "cancelled":
        raise FhirError(422, "business-rule", f"Claim/{claim_id} is cancelled already", expression=["Claim.status"])
    if not sent(prior) or lifecycle(prior) in UNSUBMITTED:
        raise FhirError(422, "business-rule", f"Claim/{claim_id} has not been sent to the payer "
                        f"({lifecycle(prior) or prior.get('status')}): there is nothing to void; change or delete "
                        "it instead", expression=["Claim"])
    if lifecycle(prior) == "rejected" and not payer_number(prior):
        raise FhirError(422, "business-rule", f"Claim/{claim_id} was rejected before the payer adjudicated it: "
                        "there is nothing to void", expression=["Claim"])
    successor = replaced_by(unit, prior)
    if successor is not None:
        raise FhirError(422, "business-rule", f"Claim/{claim_id} was replaced by Claim/{successor}: the payer "
                        "holds the replacement now; void that one", expression=["Claim"])
    related = related_to(prior, "Claim.identifier")
    claim = {k: v for k, v in without_server_owned(prior).items() if k not in ("id", "text")}
    pcn = {i.get("value") for i in prior.get("identifier") or [] if i.get("system") == PATIENT_CONTROL_NUMBER}
    claim["identifier"] = [i for i in claim.get("identifier") or []
                           if not (i.get("system") == PATIENT_CONTROL_NUMBER and i.get("value") in pcn)]
    if not claim["identifier"]:
        del claim["identifier"]
    claim.update(status="active", created=unit.now.date().isoformat(), related=[related])
    claim["extension"] = [*(claim.get("extension") or []), {"url": CLAIM_FREQUENCY, "valueCode": VOID}]
    set_lifecycle(claim, "clean")  # the charges as the payer has them: nothing to scrub
    stored = unit.update("Claim", void_id(claim_id), claim, fresh_id=True).version
    return stored, True
