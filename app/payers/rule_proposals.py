"""Repeated denials become a proposed payer rule: when one payer denies the same procedure code
for the same reason (group + CARC) on ``min_claims`` distinct claims within ``window_days``
(``denial_patterns.policy``), one work item ``Task`` (code ``rule-proposal``) proposes a rule
for the practice's rule pack of that payer. Accepting it (``Task/{id}/$accept-rule``) stores the
rule as the pack's next version, so the scrubber holds the next such claim before it goes.

Called by the denial work items (``denials.open_or_refresh``) after an answer is posted, with
the lines the answer denied: per (payer, code, reason) of a claim one lock and one insert, and
when the claim is new to the pattern two or three indexed reads (its proposals, the policy, the
denials no proposal counted yet); the Task is written only when the threshold is reached or an
open proposal gains a claim.
Idempotent: the same claim is counted once per pattern; a pattern has at most one open proposal
(later denials join it, however old it is); a dismissed or accepted proposal keeps the claims it
counted, so only later denials can propose the pattern again.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from app.claims import rule_packs
from app.fhir.dates import instant
from app.fhir.errors import FhirError, issue
from app.fhir.store import Unit, Version
from app.fhir.tasks import is_open, task_input, work_item
from app.payers import denial_patterns
from app.payers.denial_patterns import Pattern
from fhir_mappings.tables import CPT_SYSTEM
from fhir_mappings.tenant_rules import rule_problems
from fhir_mappings.vocabulary import SERVER_NAMESPACE, TASK_CODE, WORK_ROLE, stable_id
from payer_adapters.x12 import denials as denial_rules
from payer_adapters.x12.codes import CARC_SYSTEM, GROUP_SYSTEM

CODE = "rule-proposal"
RULE_INPUT = "proposed-rule"
RULE_PARAM_PATH = "Parameters.parameter.where(name = 'rule').valueString"
PROCEDURE_CODE = re.compile(r"^[A-Z0-9]{5}$")  # CPT/HCPCS, as a rule's match.codes

DeniedLine = tuple[str, str, str]  # (procedure code, group, CARC)


def observe(unit: Unit, claim: dict[str, Any], lines: Iterable[DeniedLine]) -> None:
    """Count the lines an answer denied on ``claim``; open or extend the proposals they complete."""
    payer = ((claim.get("insurer") or {}).get("reference")) or ""
    if not payer.startswith("Organization/"):
        return
    today = unit.now.date()
    policy: denial_patterns.Policy | None = None
    for code, group, carc in sorted(set(lines)):
        if not PROCEDURE_CODE.match(code or "") or len(carc) > 5:
            continue  # a drug (NDC) or revenue code line: no payer rule can name it
        pattern = Pattern(payer, code, f"{group}-{carc}")
        unit.lock(CODE, payer, code, pattern.reason)  # one proposal per pattern, whoever posts
        if not denial_patterns.record(unit.conn, unit.tenant_id, pattern, claim["id"], today):
            continue  # this claim was counted already (a redelivered or repeated answer)
        earlier = denial_patterns.proposals(unit.conn, unit.tenant_id, pattern)
        found = unit.current_many([("Task", t) for t in earlier]) if earlier else {}
        current = next((v for v in found.values() if v.content and is_open(v.resource())), None)
        if current is not None:
            unit.modify("Task", current.id, lambda t: _add_claim(t, claim["id"], unit.now))
            denial_patterns.assign(unit.conn, unit.tenant_id, pattern, [claim["id"]], current.id)
            continue
        policy = policy or denial_patterns.policy(unit.conn, unit.tenant_id)
        counted = denial_patterns.uncounted(unit.conn, unit.tenant_id, pattern,
                                            today - timedelta(days=policy.window_days - 1))
        if len(counted) < policy.min_claims:
            continue
        task = _proposal(unit, pattern, counted, policy)
        unit.update("Task", task["id"], task)
        denial_patterns.assign(unit.conn, unit.tenant_id, pattern, [c for c, _ in counted], task["id"])


def _reason_concept(reason: str) -> dict[str, Any]:
    group, carc = reason.split("-", 1)
    text = denial_rules.carc_text(carc)
    return {"coding": [{"system": GROUP_SYSTEM, "code": group}, {"system": CARC_SYSTEM, "code": carc}],
            "text": reason + (f": {text}" if text else "")}


def proposed_rule(pattern: Pattern, payer_name: str, days: list[date]) -> dict[str, Any]:
    """The rule pack entry a proposal offers, from ``data/rule_proposals.json``'s template."""
    template = denial_patterns.settings()["proposed_rule"]
    carc_text = denial_rules.carc_text(pattern.reason.split("-", 1)[1])
    values = {"payer": payer_name, "code": pattern.code, "reason": pattern.reason,
              "reason_text": f" ({carc_text.rstrip('.')})" if carc_text else "", "count": len(days),
              "when": (f"on {min(days)}" if min(days) == max(days) else f"from {min(days)} to {max(days)}")}
    return {"id": template["id"].format(**values), "text": template["text"].format(**values)[:500],
            "severity": template["severity"], "match": {"codes": [pattern.code]},
            "source": f"{len(days)} denials {pattern.reason} of {pattern.code} by {pattern.payer}"}


def _proposal(unit: Unit, pattern: Pattern, counted: list[tuple[str, date]],
              policy: denial_patterns.Policy) -> dict[str, Any]:
    org = unit.current(*pattern.payer.split("/", 1))
    name = (org.resource().get("name") if org is not None and not org.deleted else None) or pattern.payer
    rule = proposed_rule(pattern, name, [d for _, d in counted])
    task = work_item(
        CODE, "Propose a payer rule",
        f"{name} denied {pattern.code} as {pattern.reason} on {len(counted)} claims within {policy.window_days} "
        f"days. Accept the proposed rule ($accept-rule) to hold such claims before they are sent, or cancel "
        "this Task to dismiss it.", unit.now,
        task_id=stable_id(SERVER_NAMESPACE, "task", CODE, unit.tenant_id, pattern.payer, pattern.code,
                          pattern.reason, counted[0][0]),
        focus=pattern.payer, business_status="proposed",
        inputs=[task_input("payer", valueReference={"reference": pattern.payer, "display": name}),
                task_input("code", valueCodeableConcept={"coding": [{"system": CPT_SYSTEM, "code": pattern.code}]}),
                task_input("reason", valueCodeableConcept=_reason_concept(pattern.reason)),
                task_input(RULE_INPUT, valueString=json.dumps(rule, indent=1)),
                *[task_input("claim", valueReference={"reference": f"Claim/{c}"}) for c, _ in counted]])
    task["performerType"] = [{"coding": [{"system": WORK_ROLE, "code": "biller"}], "text": "biller"}]
    return task


def _add_claim(task: dict[str, Any], claim_id: str, now: datetime) -> bool:
    if not is_open(task):
        return False
    ref = {"reference": f"Claim/{claim_id}"}
    if any(i.get("valueReference") == ref for i in task.get("input") or []):
        return False
    task["input"] = [*(task.get("input") or []), task_input("claim", valueReference=ref)]
    task["lastModified"] = instant(now)
    return True


def _input(task: dict[str, Any], name: str) -> Any:
    found = next((i for i in task.get("input") or [] if (i.get("type") or {}).get("text") == name), None)
    return None if found is None else next((v for k, v in found.items() if k.startswith("value")), None)


def _first_service(unit: Unit, task: dict[str, Any]) -> date:
    """The earliest date of service of the proposal's denied claims (the payer was denying
    from then on), else today."""
    refs = [i["valueReference"]["reference"].split("/", 1) for i in task.get("input") or []
            if (i.get("type") or {}).get("text") == "claim" and "valueReference" in i]
    days = []
    for version in unit.current_many([(t, rid) for t, rid in refs]).values():
        start = (version.resource().get("billablePeriod") or {}).get("start") if version.content else None
        if start:
            days.append(date.fromisoformat(start[:10]))
    return min(days, default=unit.now.date())


def accept(unit: Unit, task_id: str, *, rule_text: str | None, effective: str | None) -> Version:
    """Write the proposal's rule (or ``rule_text``, the caller's edit of it) into the payer's rule
    pack as its next version, effective from ``effective`` (default: the first date of service
    of the denied claims, since the payer's policy was in force then); complete the Task.
    Returns the stored Library."""
    task = unit.read("Task", task_id).resource()
    code = next((c.get("code") for c in (task.get("code") or {}).get("coding") or [] if c.get("system") == TASK_CODE), None)
    if code != CODE:
        raise FhirError(422, "business-rule", f"Task/{task_id} is not a rule proposal", expression=["Task.code"])
    if not is_open(task):
        raise FhirError(409, "conflict", f"Task/{task_id} is {task.get('status')}: the proposal was already "
                        "accepted or dismissed", expression=["Task.status"])
    try:
        start = date.fromisoformat(effective) if effective else _first_service(unit, task)
    except ValueError:
        raise FhirError(400, "invalid", f"effective {effective!r} is not a date (YYYY-MM-DD)",
                        expression=["Parameters.parameter.where(name = 'effective').valueDate"]) from None
    where = RULE_PARAM_PATH if rule_text is not None else f"Task.input.where(type.text = '{RULE_INPUT}').valueString"
    text = rule_text if rule_text is not None else str(_input(task, RULE_INPUT) or "")
    try:
        rule = json.loads(text)
    except ValueError:
        raise FhirError(422, "invalid", "The rule is not JSON", expression=[where]) from None
    problems = rule_problems(rule, "rule")
    if problems:
        raise FhirError(422, "invariant", problems[0][1], issues=[
            issue("invariant", t, expression=[where, f"{where}.{p[len('rule.'):]}"] if p != "rule" else [where])
            for p, t in problems])
    payer = (_input(task, "payer") or {}).get("reference") or ""
    stored = rule_packs.add_rule(unit, payer, rule, start)

    def complete(t: dict[str, Any]) -> bool:
        if not is_open(t):
            raise FhirError(409, "conflict", f"Task/{task_id} was closed meanwhile", expression=["Task.status"])
        t.update(status="completed", businessStatus={"text": "accepted"}, lastModified=instant(unit.now))
        t["output"] = [{"type": {"text": "rule-pack"}, "valueReference": {"reference": f"Library/{stored.id}"}}]
        return True

    unit.modify("Task", task_id, complete)
    return stored
