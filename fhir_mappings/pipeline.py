"""One call for the common case: pick the profile, plan, build and scrub."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_mappings.charges import ChargeMaster
from fhir_mappings.claim import claim_from_plan
from fhir_mappings.inputs import ClaimInputs
from fhir_mappings.plan import BillingPlan, plan_billing
from fhir_mappings.profiles import PayerProfile, get_profile, select_profile_name
from fhir_mappings.resolve import payer_id_of
from fhir_mappings.scrubbing import scrub
from fhir_mappings.tables import load_json
from fhir_mappings.tenant_rules import RulePack


def profile_for(inputs: ClaimInputs, name: str | None = None) -> PayerProfile:
    """The payer profile: ``name`` when given, else chosen from the Coverage; adjusted for the payer id.

    Raises KeyError for an unknown profile name.
    """
    payer_id = payer_id_of(inputs.payer.resource) if inputs.payer else None
    return get_profile(name or select_profile_name(inputs.coverage.resource), payer_id)


@dataclass(frozen=True)
class Generated:
    """A generated claim with what it was built from: the billing plan and fee schedule are
    handed back so that callers working out more from the same visit (deadlines, thresholds)
    need not plan it again."""

    claim: dict[str, Any]
    outcome: dict[str, Any]
    plan: BillingPlan
    charges: ChargeMaster
    profile: PayerProfile


def generate_planned(
    inputs: ClaimInputs,
    *,
    profile: str | PayerProfile | None = None,
    claim_id: str,
    created: datetime,
    charges: ChargeMaster | None = None,
    rule_packs: Sequence[RulePack] = (),
) -> Generated:
    """``generate``, keeping the plan, fee schedule and profile it used. ``rule_packs``: the
    practice's payer rule packs (``tenant_rules``; the one of the claim's payer in force applies)."""
    charges = charges if charges is not None else ChargeMaster.of_inputs(inputs)
    prof = profile if isinstance(profile, PayerProfile) else profile_for(inputs, profile)
    plan = plan_billing(inputs, prof, charges, claim_id=claim_id)
    claim = claim_from_plan(inputs, plan, claim_id=claim_id, created=created, currency=charges.currency)
    return Generated(claim, scrub(claim, inputs, prof, plan=plan, rule_packs=rule_packs), plan, charges, prof)


def generate(
    inputs: ClaimInputs,
    *,
    profile: str | PayerProfile | None = None,
    claim_id: str,
    created: datetime,
    charges: ChargeMaster | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the Claim for ``inputs`` and scrub it: returns (Claim dict, OperationOutcome dict).

    The Claim's status is ``active``; the caller stores it as ``draft`` when
    ``outcome_has_errors(outcome)`` is true. Deterministic: same inputs and arguments, same output.
    ``charges`` is the practice's fee schedule; by default the ChargeItemDefinitions among the
    inputs (none: every line is unpriced, a CHARGE-MISSING error).
    """
    done = generate_planned(inputs, profile=profile, claim_id=claim_id, created=created, charges=charges)
    return done.claim, done.outcome


def scrub_claim(
    claim: dict[str, Any],
    inputs: ClaimInputs | None = None,
    *,
    profile: str | PayerProfile | None = None,
    charges: ChargeMaster | None = None,
    rule_packs: Sequence[RulePack] = (),
) -> dict[str, Any]:
    """Scrub a Claim received from elsewhere (``$scrub``); returns an OperationOutcome dict.

    With ``inputs`` (the resources of the Encounter in ``Claim.item.encounter``) the claim is
    compared with the record and the profile defaults to the Coverage's; without them only the
    claim-level edits run and the profile defaults to the data file's default. KeyError for an
    unknown profile name.
    """
    if isinstance(profile, PayerProfile):
        prof = profile
    elif inputs is not None:
        prof = profile_for(inputs, profile)
    else:
        prof = get_profile(profile or load_json("profiles.json")["default"])
    return scrub(claim, inputs, prof, charges=charges, rule_packs=rule_packs)
