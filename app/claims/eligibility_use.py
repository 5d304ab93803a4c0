"""The payer's eligibility answers at claim generation: the claim edits read them (``fhir_mappings``
ELIG-* rules); this module does what the edits cannot, because it writes: asks for a fresh answer
when the one relied on is stale, and opens one ``visit-limit-low`` work item per answer and
discipline when few visits remain.

``POLICY`` is a hook: ``app.bootstrap`` fills it from the settings (this layer reads none).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.fhir.store import Unit
from app.fhir.tasks import task_input, work_item
from app.jobs import enqueue
from fhir_mappings.eligibility_answers import is_stale, newest_answer, visit_counts
from fhir_mappings.inputs import ClaimInputs
from fhir_mappings.tables import disciplines
from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id

#: The job the payer side runs to ask the payer again for a Coverage (``app.payers.eligibility_sweep``).
REFRESH = "eligibility-refresh"


@dataclass
class Policy:
    max_age_days: int = 30
    visits_low: int = 3


POLICY = Policy()


def prepare(inputs: ClaimInputs) -> None:
    """Give the pure edits the server's refresh age."""
    inputs.eligibility_max_age_days = POLICY.max_age_days


def follow_up(unit: Unit, inputs: ClaimInputs, claim: dict[str, Any], now: datetime) -> None:
    """After a claim is built: refresh a stale answer; warn once per answer when visits run low."""
    answer = newest_answer(inputs)
    if answer is None:
        return
    coverage = inputs.coverage.id
    if is_stale(inputs, answer, claim):
        day = now.date().isoformat()
        enqueue(unit, REFRESH, {"coverage": coverage, "discipline": _discipline(claim),
                                "day": ((claim.get("billablePeriod") or {}).get("start") or day)[:10]},
                dedupe_key=f"{REFRESH}:{coverage}@{day}")
    for n in visit_counts(inputs, answer, claim):
        if 0 <= n.remaining <= POLICY.visits_low:
            open_visit_limit_task(unit, answer.id, coverage, claim.get("patient"), n.discipline, n.allowed, n.used,
                                  n.remaining, now)


def _discipline(claim: dict[str, Any]) -> str | None:
    """The discipline of the claim's first line carrying a GO/GP/GN modifier."""
    by_modifier = {d.modifier: d.code for d in disciplines().values()}
    for item in claim.get("item") or []:
        for m in item.get("modifier") or []:
            for c in (m.get("coding") or [])[:1]:
                if c.get("code") in by_modifier:
                    return by_modifier[c["code"]]
    return None


def open_visit_limit_task(unit: Unit, answer_id: str, coverage_id: str, patient: dict[str, Any] | None,
                          discipline: str, allowed: int, used: int, remaining: int, now: datetime) -> None:
    """One ``visit-limit-low`` Task per (answer, discipline): its id is derived from them, so a
    second claim (or the answer's own check) finds it and writes nothing."""
    tid = stable_id(SERVER_NAMESPACE, "visit-limit-low", answer_id, discipline)
    if unit.current("Task", tid) is not None:
        return
    task = work_item("visit-limit-low", "Few visits remain",
                     f"{remaining} {discipline} visit(s) remain of {allowed} ({used} used) on Coverage/{coverage_id}: "
                     "ask the payer for more visits or plan the remaining care.", now,
                     focus=f"Coverage/{coverage_id}", patient=patient, task_id=tid,
                     inputs=[task_input("eligibility-response", valueReference={
                                 "reference": f"CoverageEligibilityResponse/{answer_id}"}),
                             task_input("discipline", valueString=discipline),
                             task_input("allowed", valueUnsignedInt=allowed),
                             task_input("used", valueUnsignedInt=used),
                             task_input("remaining", valueUnsignedInt=remaining)])
    unit.update("Task", tid, task)
