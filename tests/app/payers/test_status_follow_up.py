"""Claim status follow-up, end to end through the sandbox payer: a claim the payer lost is asked
about once the follow-up days have passed, the payer has no claim on file, a ``claim-status``
work item opens, the biller resubmits with ``$submit`` (the same claim: same id, patient control
number and frequency 1), the payer pays, and the work item closes. The same inquiry goes out as a
276 file (the 277 comes back through the mailbox), through the clearinghouse JSON API and as a
FHIR payer's ``$inquire``."""
from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from app.jobs import J
from app.payers.inbound import messages, queue_collection
from app.payers.status_follow_up import inquiries, run_sweep
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import StatusRequest276, decode, validate
from payer_adapters.x12.validate import pyx12_available_for

from tests.flows import NOW, SANDBOX, adrain, claim_for, connect, jobs, lifecycle, load_practice

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"
STATUS = "https://therabridge.dev/fhir/StructureDefinition/claim-status-lifecycle"
PCN = "https://therabridge.dev/fhir/sid/patient-control-number"


def today(store: Any) -> date:
    return store.clock().date()


async def sweep(store: Any, tenant: str, day: date) -> list[Any]:
    """Run the day's follow-up sweep and the inquiries it queued; the claim-status jobs of that day."""
    with store.for_tenant(tenant).unit() as unit:
        run_sweep(unit, {"day": day.isoformat()})
    await adrain(store)
    return [j for j in jobs(store, tenant, "claim-status") if j.dedupe_key.endswith(f"@{day.isoformat()}")]


async def collect(store: Any, tenant: str) -> None:
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    await adrain(store)


async def status_tasks(api: Any, claim_id: str) -> list[dict[str, Any]]:
    bundle = (await api.get(f"/fhir/Task?code={TASK_CODES}|claim-status&focus=Claim/{claim_id}")).json()
    return sorted((e["resource"] for e in bundle.get("entry", [])), key=lambda t: t["authoredOn"])


def inputs(task: dict[str, Any]) -> dict[str, Any]:
    return {i["type"]["text"]: next(v for k, v in i.items() if k.startswith("value")) for i in task["input"]}


def status_answers(responses: dict[str, Any]) -> list[str]:
    return [e["valueCoding"]["code"] for entry in responses.get("entry", []) for e in
            entry["resource"].get("extension", []) if e["url"] == STATUS]


def inquiry_rows(store: Any, tenant: str, claim_id: str) -> list[dict[str, Any]]:
    with store.for_tenant(tenant).reading() as reader:
        return inquiries(reader, claim_id)


async def test_a_lost_claim_is_found_missing_resubmitted_once_and_paid(api, store, tenant, payer_settings, demo_bundle,
                                                                       sandbox, route_to_sandbox, ledger):
    """Clearinghouse JSON: the whole story, with the payer's record checked at every step."""
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"}, profile="commercial")
    await adrain(store)
    claim = await claim_for(api, "enc-brooks-1")
    pcn = next(i["value"] for i in claim["identifier"] if i["system"] == PCN)
    sandbox.state.sandbox.faults.set("/medicalnetwork/professionalclaims/v3/submission", "lose")
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    await collect(store, tenant)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "submitted"
    assert messages(store, tenant) == [] and ledger()["claim_count"] == 0  # the payer kept nothing

    day0 = today(store)
    other = tenant + "-other"  # another practice's sweep never sees this claim
    store.ensure_tenant(other)
    assert await sweep(store, other, day0 + timedelta(days=30)) == []
    with store.engine.begin() as conn:
        conn.execute(J.delete().where(J.c.tenant_id == other))  # its next day's sweep
    assert await sweep(store, tenant, day0 + timedelta(days=20)) == []  # not yet: 21 days by default
    asked = await sweep(store, tenant, day0 + timedelta(days=21))
    assert [j.status for j in asked] == ["done"]
    assert await sweep(store, tenant, day0 + timedelta(days=21)) == asked  # the same day again: nothing new
    (row,) = inquiry_rows(store, tenant, claim["id"])
    assert (row["status"], row["answer"], row["code"]) == ("answered", "not-found", "A4:35")

    responses = (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}")).json()
    assert status_answers(responses) == ["not-found"]
    (task,) = await status_tasks(api, claim["id"])
    assert task["status"] == "requested" and task["businessStatus"]["text"] == "not-found"
    facts = inputs(task)
    assert facts["statusCode"] == "A4:35" and "$submit" in facts["nextAction"]
    assert "frequency 1" in facts["nextAction"]
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "submitted"  # nothing moved back
    assert await sweep(store, tenant, day0 + timedelta(days=50)) == []  # a person acts now; not asked again

    # The biller resubmits: one action, the same claim.
    r = await api.post(f"/fhir/Claim/{claim['id']}/$submit")
    assert r.status_code == 202, r.text
    assert r.json()["id"] == claim["id"]
    again = await api.post(f"/fhir/Claim/{claim['id']}/$submit")  # pressed twice: queued once
    assert again.status_code == 200
    await adrain(store)
    assert ledger()["by_patient_control_number"] == {pcn: 1}
    sent = ledger()["claims"][0]
    assert sent["surface"] == "chc" and sent["outcome"] == "adjudicated"
    (task,) = await status_tasks(api, claim["id"])
    assert task["status"] == "in-progress" and task["businessStatus"]["text"] == "resubmitted"

    await collect(store, tenant)
    stored = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(stored) in ("paid", "partially-paid", "denied")
    assert (await api.get("/fhir/Claim?patient=Patient/pat-brooks")).json()["total"] == 1  # no second claim
    assert (await api.get(f"/fhir/ExplanationOfBenefit?claim=Claim/{claim['id']}")).json()["total"] == 1
    await adrain(store)
    (task,) = await status_tasks(api, claim["id"])
    assert task["status"] == "completed", task
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 200  # paid: never sent again
    await adrain(store)
    assert ledger()["claim_count"] == 1


async def test_x12_276_out_277_back_through_the_mailbox(api, store, tenant, payer_settings, demo_bundle, mailbox: Path,
                                                        route_to_sandbox):
    """x12-directory with a contract's own follow-up days (10): one claim the payer has (its 835
    went astray), one it lost. 276 files go out, 277s come back and are posted; the lost claim is
    resubmitted as the same original claim (CLM05-3 1) and paid; the other, found paid, gets a
    Task when its 835 still has not come 10 days later."""
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare", status_follow_up_days=10)
    await adrain(store)
    kept, lost = await claim_for(api, "enc-alvarez-1"), await claim_for(api, "enc-alvarez-2")
    payer = Mailbox(mailbox, Engine(load_config()), use_pyx12=False)
    assert (await api.post(f"/fhir/Claim/{kept['id']}/$submit")).status_code == 202
    await adrain(store)
    assert [w.split("_")[0] for w in payer.process(NOW)] == ["999", "277CA", "835"]
    for f in (mailbox / "outbox").glob("835_*"):
        f.unlink()  # the remittance went astray
    assert (await api.post(f"/fhir/Claim/{lost['id']}/$submit")).status_code == 202
    await adrain(store)
    for f in (mailbox / "inbox").glob("837P_*"):
        shutil.move(str(f), mailbox / "processed" / f.name)  # taken in by the payer and lost
    await collect(store, tenant)
    assert lifecycle((await api.get(f"/fhir/Claim/{kept['id']}")).json()) == "accepted"
    assert lifecycle((await api.get(f"/fhir/Claim/{lost['id']}")).json()) == "submitted"

    day0 = today(store)
    assert await sweep(store, tenant, day0 + timedelta(days=9)) == []
    assert len(await sweep(store, tenant, day0 + timedelta(days=10))) == 2
    files = sorted((mailbox / "inbox").glob("276_*"))
    assert [f.name for f in files] == sorted(f"276_{c['id']}-{day0 + timedelta(days=10)}.x12" for c in (kept, lost))
    for f in files:
        data = f.read_bytes()
        assert pyx12_available_for(data) and validate(data) == []  # ours and pyx12 (the product's X212 map)
        assert len([q for r in decode(data).of_type(StatusRequest276) for q in r.inquiries]) == 1
    assert await sweep(store, tenant, day0 + timedelta(days=15)) == []  # in flight: the 277s are not back yet
    assert [r["status"] for c in (kept, lost) for r in inquiry_rows(store, tenant, c["id"])] == ["sent", "sent"]

    assert sorted(w.split("_")[0] for w in payer.process(NOW)) == ["277", "277", "999", "999"]
    await collect(store, tenant)
    assert {m["kind"] for m in messages(store, tenant)} >= {"277"}
    assert all(m["status"] == "posted" for m in messages(store, tenant))
    assert [r["answer"] for r in inquiry_rows(store, tenant, kept["id"])] == ["paid"]
    assert [r["code"] for r in inquiry_rows(store, tenant, lost["id"])] == ["A4:35"]
    assert await status_tasks(api, kept["id"]) == []  # paid per the payer: wait for its 835
    (task,) = await status_tasks(api, lost["id"])
    assert inputs(task)["statusCode"] == "A4:35"

    # 10 days after the payer said "paid", still no 835: a work item says so (and nobody is asked).
    assert await sweep(store, tenant, day0 + timedelta(days=5)) == []
    assert await status_tasks(api, kept["id"]) == []
    assert await sweep(store, tenant, day0 + timedelta(days=20)) == []
    (waiting,) = await status_tasks(api, kept["id"])
    assert waiting["businessStatus"]["text"] == "no-remittance" and "835" in inputs(waiting)["nextAction"]

    # The lost claim is sent again: the same claim as an original (frequency 1).
    assert (await api.post(f"/fhir/Claim/{lost['id']}/$submit")).status_code == 202
    await adrain(store)
    (resent,) = sorted((mailbox / "inbox").glob("837P_*"))
    clm = next(s for s in resent.read_text().split("~") if s.strip().startswith("CLM*")).strip().split("*")
    assert clm[1] == next(i["value"] for i in lost["identifier"] if i["system"] == PCN)
    assert clm[5].split(":")[2] == "1"
    assert [w.split("_")[0] for w in payer.process(NOW)] == ["999", "277CA", "835"]
    await collect(store, tenant)
    await adrain(store)
    assert lifecycle((await api.get(f"/fhir/Claim/{lost['id']}")).json()) in ("paid", "partially-paid", "denied")
    (task,) = await status_tasks(api, lost["id"])
    assert task["status"] == "completed"
    assert payer.engine.ledger.summary()["by_patient_control_number"][clm[1]] == 1


async def test_fhir_payer_inquire_finds_no_claim_on_file(api, store, tenant, payer_settings, demo_bundle, sandbox,
                                                          route_to_sandbox, ledger):
    """fhir-payer: the payer answered ``queued`` and lost the claim; ``$inquire`` finds nothing."""
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "fhir-payer",
            {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
             "client_id": "demo-client"}, {"client_secret": "demo-secret"}, profile="medicare")
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    sandbox.state.sandbox.faults.set("/fhir/Claim/$submit", "lose")
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "accepted"  # pended at the payer
    assert ledger()["claim_count"] == 0

    assert len(await sweep(store, tenant, today(store) + timedelta(days=21))) == 1
    assert [r["answer"] for r in inquiry_rows(store, tenant, claim["id"])] == ["not-found"]
    (task,) = await status_tasks(api, claim["id"])
    assert task["businessStatus"]["text"] == "not-found"

    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) in ("paid", "partially-paid", "denied")
    assert ledger()["claim_count"] == 1
    (task,) = await status_tasks(api, claim["id"])
    assert task["status"] == "completed"


async def test_a_pended_claim_is_asked_again_later_then_decided(api, store, tenant, payer_settings, demo_bundle,
                                                                sandbox, route_to_sandbox):
    """fhir-payer: pending → no work item, asked again N days later; the payer's final ClaimResponse
    is then posted as its decision (workers' comp without authorization: denied, CO-197)."""
    import copy

    from app.payers.submission import queue_claim

    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-wc", "fhir-payer",
            {"base_url": f"{SANDBOX}/fhir", "auth": "client_secret", "token_url": f"{SANDBOX}/oauth/token",
             "client_id": "demo-client"}, {"client_secret": "demo-secret"}, profile="workers-comp")
    await adrain(store)
    sandbox.state.sandbox.config.pended_inquiries = 1  # the first inquiry still finds it pended
    claim = copy.deepcopy(await claim_for(api, "enc-alvarez-1"))
    claim.update(patient={"reference": "Patient/pat-kim"},
                 insurer={"reference": "Organization/payer-wc",
                          "identifier": {"system": "https://therabridge.dev/fhir/sid/payer-id", "value": "WCFUND"}},
                 identifier=[{"system": PCN, "value": "FOLLOWWC" + tenant[-8:].upper()}])
    claim["insurance"][0]["coverage"] = {"reference": "Coverage/cov-kim"}
    cid = f"wc-{tenant}"
    with store.for_tenant(tenant).unit() as unit:
        unit.create({k: v for k, v in claim.items() if k not in ("id", "meta")}, rid=cid)
        assert queue_claim(unit, cid)[1] == 202
    await adrain(store)
    assert lifecycle((await api.get(f"/fhir/Claim/{cid}")).json()) == "accepted"  # pended
    with store.engine.begin() as conn:  # the pended claim's own inquiries gave up long ago
        conn.execute(J.delete().where(J.c.tenant_id == tenant, J.c.kind == "inquire-claim"))

    day0 = today(store)
    assert len(await sweep(store, tenant, day0 + timedelta(days=21))) == 1
    assert [(r["status"], r["answer"]) for r in inquiry_rows(store, tenant, cid)] == [("answered", "pending")]
    assert await status_tasks(api, cid) == []  # pending: nobody acts
    assert await sweep(store, tenant, day0 + timedelta(days=30)) == []  # asked again only N days later
    assert len(await sweep(store, tenant, day0 + timedelta(days=42))) == 1
    assert [r["answer"] for r in inquiry_rows(store, tenant, cid)] == ["pending", "denied"]
    stored = (await api.get(f"/fhir/Claim/{cid}")).json()
    assert lifecycle(stored) == "denied"
    assert await status_tasks(api, cid) == []
    assert await sweep(store, tenant, day0 + timedelta(days=90)) == []  # decided: no longer followed up


def test_open_follow_ups_are_read_once_per_transaction_and_forgotten_when_one_changes(tenant_store, monkeypatch):
    """A claim reaching payment closes its open follow-up work item: which claims have one is
    read once per transaction (an 835 pays hundreds), kept right when a work item opens in the
    same transaction, and asked per claim when a practice has too many open ones to keep."""
    import sqlalchemy as sa

    from app.payers import status_follow_up as sf
    from app.payers.models import STATUS_INQUIRIES as Q

    with tenant_store.unit() as unit:
        for claim_id, task in (("c-open", "task-1"), ("c-quiet", None)):
            unit.conn.execute(Q.insert().values(tenant_id=unit.tenant_id, claim_id=claim_id, day="2026-12-01",
                                                status="answered", asked_at=unit.now, task_id=task))
    with tenant_store.unit() as unit:
        assert sf._follow_up_open(unit, "c-open") and not sf._follow_up_open(unit, "c-quiet")
        assert unit.memo[sf.OPEN_FOLLOW_UPS] == {"c-open"}
        pk = unit.conn.execute(sa.select(Q.c.pk).where(Q.c.tenant_id == unit.tenant_id,
                                                       Q.c.claim_id == "c-quiet")).scalar_one()
        sf._set(unit, pk, task_id="task-2", task_closed_at=None)  # a work item opened in this transaction
        assert sf._follow_up_open(unit, "c-quiet")
    monkeypatch.setattr(sf, "OPEN_FOLLOW_UPS_KEPT", 1)  # two open: more than kept
    with tenant_store.unit() as unit:
        assert sf._follow_up_open(unit, "c-open") and sf._follow_up_open(unit, "c-quiet")
        assert not sf._follow_up_open(unit, "c-other")
        assert unit.memo[sf.OPEN_FOLLOW_UPS] is False
