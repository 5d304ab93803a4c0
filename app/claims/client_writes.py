"""What a client may write of a Claim (the store's guard for the type).

The lifecycle, its history, the submission key, the submission receipt, the payer's claim number
and the void marker are the server's facts: a client's write keeps those of the stored version
(none on a create) whatever it sends. A client's Claim whose ``related.claim`` names a claim the
payer holds is a correction of it: the server fills ``related.reference`` with the payer's claim
number (``corrections``), or refuses it (422) while the payer has not numbered that claim.
The lifecycle of a claim that has not left is the scrubber's verdict on what the client wrote
(``draft`` when an error holds it, ``clean`` otherwise); a queued claim not yet in a batch keeps
its place while it stays clean. A claim that has left for the payer is never changed or deleted
by a client: the payer holds that version, and a correction is a new Claim that names it.
A prior-authorization request (``use = preauthorization``) has no lifecycle: it is sent with
``$submit`` (``app.payers.prior_auth``), never queued or billed.
"""
from __future__ import annotations

from typing import Any

import fhir_mappings
from app.claims import corrections, workflow
from app.claims.lifecycle import lifecycle, without_server_owned, with_server_owned
from app.fhir.errors import FhirError
from app.fhir.store import Unit, Version


def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    stored = current.resource() if current is not None else None
    if (incoming or stored or {}).get("use") == "preauthorization" and (stored or {}).get("use", "preauthorization") \
            == "preauthorization":
        return incoming  # a prior-authorization request: asked of the payer, never billed (no lifecycle)
    if stored is not None and not workflow.editable(unit, stored):
        if incoming is None or _content(incoming) != _content(stored):
            raise FhirError(422, "business-rule", _gone_out(stored), expression=["Claim"])
        return with_server_owned(incoming, stored)
    if incoming is None:
        return None
    claim = with_server_owned(incoming, stored)
    corrections.link_client_correction(unit, claim)
    workflow.settle_lifecycle(claim, stored, held=_held(unit, claim))
    return claim


def _content(claim: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in without_server_owned(claim).items() if k not in ("id", "text")}


def _gone_out(claim: dict[str, Any]) -> str:
    return (f"Claim/{claim.get('id')} has gone to the payer ({lifecycle(claim)}); it is not changed or deleted. "
            "Send a correction as a new Claim whose related.claim names it (relationship prior).")


def _held(unit: Unit, claim: dict[str, Any]) -> bool:
    """Whether the scrubber holds the claim (a claim that is not ``active`` is held as it is)."""
    if claim.get("status") != "active":
        return True
    try:
        outcome = workflow.scrub_claim(unit, claim, profile=None)
    except (FhirError, fhir_mappings.InputError):
        return True  # no profile fits, or the visit cannot be read: a person must look first
    return fhir_mappings.outcome_has_errors(outcome)
