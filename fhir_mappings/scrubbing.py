"""Run the rule catalog over a Claim and explain every problem as an OperationOutcome issue.

Each issue carries the rule id in ``details.coding`` (system ``vocabulary.SCRUB_RULE``), the
FHIRPath ``expression`` of the claim element or input resource concerned, and a sentence saying
what is wrong and how to fix it.
Issues come in catalog order, then in the order found, so the output is deterministic.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_mappings.charges import ChargeMaster
from fhir_mappings.checks import ScrubContext
from fhir_mappings.inputs import ClaimInputs
from fhir_mappings.outcome import issue, operation_outcome
from fhir_mappings.plan import BillingPlan, plan_billing
from fhir_mappings.profiles import PayerProfile
from fhir_mappings.rules import rules_for
from fhir_mappings.tenant_rules import RulePack, tenant_issues


def scrub(
    claim: dict[str, Any],
    inputs: ClaimInputs | None,
    profile: PayerProfile,
    *,
    plan: BillingPlan | None = None,
    charges: ChargeMaster | None = None,
    rule_packs: Sequence[RulePack] = (),
) -> dict[str, Any]:
    """Scrub ``claim`` under ``profile``; returns an OperationOutcome dict.

    With ``inputs`` the claim is also compared with what the clinical record supports (units,
    modifiers, plan of care, KX …); without them only the claim-level edits run. ``rule_packs``
    are the practice's own payer rules (``tenant_rules``): the pack of the claim's payer in force
    on its date of service adds its edits after the catalog's.
    """
    if plan is None and inputs is not None:
        plan = plan_billing(inputs, profile, charges if charges is not None else ChargeMaster.of_inputs(inputs), claim_id=claim.get("id"))
    ctx = ScrubContext(claim, profile, inputs, plan)
    planned: dict[str, list[Any]] = {}
    for f in plan.findings if plan else ():
        planned.setdefault(f.rule_id, []).append(f)
    issues: list[dict[str, Any]] = []
    for rule in rules_for(profile):
        if rule.effective and plan is not None and plan.service_day < rule.effective:
            continue  # a rule not yet in force on the date of service
        found = list(planned.get(rule.id, ()))
        if rule.check is not None:
            # A check may serve several rules (units: total-time or per-code); keep its findings for this one.
            found.extend(f for f in rule.check(ctx) if f.rule_id == rule.id)
        for f in found:
            issues.append(issue(rule.severity, rule.issue_code, rule.id, rule.summary, f.text, [f.expression]))
    issues.extend(tenant_issues(claim, profile, rule_packs, ctx.items))
    return operation_outcome(issues)
