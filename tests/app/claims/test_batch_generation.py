"""A worker's batch of claim generations (one transaction) reads the batch's Encounters and
patients once, and bills each visit as a generation of its own would: two visits of one patient
in one batch, a visit rebuilt over its claim, one whose Encounter was deleted, and one that
never existed (the demo's visits are billed once already, as their Encounters finished)."""
from __future__ import annotations

from app.claims import automation, workflow
from app.claims.gather import claims_for_encounter
from app.fhir.queries import find_resources
from app.fhir.tasks import is_open
from fhir_mappings.vocabulary import TASK_CODE
from tests.flows import adrain, load_practice

VISITS = ("enc-alvarez-1", "enc-alvarez-2", "enc-brooks-1", "enc-kim-1", "enc-maxwell-1")


def _lines(claim: dict) -> list[tuple]:
    return [(str(i["productOrService"]), str(i.get("modifier")), str(i["quantity"]), str(i["net"])) for i in claim["item"]]


async def test_a_batch_bills_as_single_generations_do(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    await adrain(store)
    ts = store.for_tenant(tenant)
    with ts.unit() as unit:  # one visit in a transaction of its own: the reference
        alone = workflow.generate_claim(unit, "enc-alvarez-1", profile=None, now=unit.now)[0].resource()
    with ts.unit() as unit:
        unit.delete("Encounter", "enc-kim-1")
    with ts.unit() as unit:
        automation.run_generate_many(unit, [{"encounter": e} for e in ("enc-nobody", *reversed(VISITS))])
    with ts.unit() as unit:
        billed = {e: claims_for_encounter(unit, e) for e in (*VISITS, "enc-nobody")}
        unbillable = [t for t in find_resources(unit, "Task", [("focus", "Encounter/enc-kim-1"),
                                                                ("code", f"{TASK_CODE}|claim-unbillable")])
                      if is_open(t)]
    assert [len(billed[e]) for e in VISITS] == [1, 1, 1, 1, 1]  # each rebuilt over its claim, none twice
    assert billed["enc-nobody"] == []
    assert len(unbillable) == 1  # the deleted visit says why it was not billed
    again = billed["enc-alvarez-1"][0]  # rebuilt in the batch over its claim: the same claim, same lines
    assert again["id"] == alone["id"] and _lines(again) == _lines(alone)
    assert billed["enc-alvarez-2"][0]["patient"] == again["patient"]
