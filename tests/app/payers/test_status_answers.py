"""What the follow-up does with each kind of answer, without a payer: when a claim is due to be
asked (``decide``) and how answers that no sandbox gives (a P3 pend, an information request) are
acted on, from 277s as payers write them."""
from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

from app.claims.lifecycle import advance
from app.payers.status_follow_up import _Last, decide, record_answer
from payer_adapters.x12 import StatusResponse277, decode, status277_to_fhir

from tests.flows import adrain, claim_for, history, lifecycle, load_practice

D = date(2026, 3, 1)
T = datetime(2026, 3, 1, 9, tzinfo=timezone.utc)


def row(status: str, answer: str | None = None, day: date = D, task: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(status=status, answer=answer, day=day.isoformat(), asked_at=T,
                           answered_at=T if answer else None, task_id=task)


def test_when_a_claim_is_asked_about():
    n = 21
    assert decide(date(2026, 3, 21), _Last(sent=T), n) is None
    assert decide(date(2026, 3, 22), _Last(sent=T), n) == "ask"  # 21 days quiet since it was sent
    asked = date(2026, 3, 22)
    assert decide(date(2026, 3, 30), _Last(sent=T, inquiry=row("sent", day=asked)), n) is None  # a 276 in flight
    assert decide(date(2026, 4, 12), _Last(sent=T, inquiry=row("sent", day=asked)), n) == "ask"  # no 277 in 21 days
    assert decide(date(2026, 3, 22), _Last(sent=T, inquiry=row("answered", "pending")), n) == "ask"
    assert decide(date(2026, 3, 21), _Last(sent=T, inquiry=row("answered", "pending")), n) is None
    assert decide(date(2026, 3, 22), _Last(sent=T, inquiry=row("answered", "paid")), n) == "no-remittance"
    assert decide(date(2026, 3, 22), _Last(sent=T, inquiry=row("answered", "paid", task="t")), n) is None
    assert decide(date(2026, 9, 1), _Last(sent=T, inquiry=row("answered", "not-found", task="t")), n) is None
    resent = datetime(2026, 3, 5, tzinfo=timezone.utc)  # sent again after the answer: counts from then
    assert decide(date(2026, 3, 25), _Last(sent=resent, inquiry=row("answered", "not-found", task="t")), n) is None
    assert decide(date(2026, 3, 26), _Last(sent=resent, inquiry=row("answered", "not-found", task="t")), n) == "ask"


STATUS_277 = """ISA*00*          *00*          *ZZ*PAYER          *ZZ*THERABRIDGE    *260301*0900*^*00501*000000501*0*T*:~
GS*HN*PAYER*THERABRIDGE*20260301*0900*501*X*005010X212~
ST*277*0001*005010X212~
BHT*0010*08*REQ501*20260301*0900*DG~
HL*1**20*1~
NM1*PR*2*MEDICARE*****PI*MCRDEMO~
HL*2*1*21*1~
NM1*41*2*THERABRIDGE*****46*THERABRIDGE~
HL*3*2*19*1~
NM1*1P*2*PRACTICE*****XX*1234567893~
HL*4*3*22*0~
NM1*IL*1*ALVAREZ*MARIA****MI*1EG4TE5MK73~
TRN*2*{pcn}~
STC*{stc}*20260301**150~
REF*EJ*{pcn}~
SE*14*0001~
GE*1*501~
IEA*1*000000501~
"""


async def test_answers_that_need_a_person(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    pcn = next(i["value"] for i in claim["identifier"] if i["system"].endswith("patient-control-number"))
    with store.for_tenant(tenant).unit() as unit:
        assert record_answer(unit, claim, None, row=None, source="test:unsent") == "not-found"
    assert (await api.get(f"/fhir/Task?focus=Claim/{claim['id']}")).json()["total"] == 0  # never sent: no work
    with store.for_tenant(tenant).unit() as unit:
        unit.modify("Claim", claim["id"], lambda c: advance(c, "submitted", unit.now))
    for stc, expected in (("P3:317", "information-requested"), ("R4:294", "information-requested"),
                          ("A7:164:IL", "rejected"), ("P1:20", "pending")):
        (res,) = decode(STATUS_277.format(pcn=pcn, stc=stc).encode()).of_type(StatusResponse277)
        (entry,) = status277_to_fhir(res, {pcn: claim})
        with store.for_tenant(tenant).unit() as unit:
            assert record_answer(unit, claim, entry["resource"], row=None, source=f"test:{stc}") == expected
    tasks = (await api.get(f"/fhir/Task?focus=Claim/{claim['id']}&code=https://therabridge.dev/fhir/CodeSystem/"
                           "task-code|claim-status")).json()
    states = sorted(e["resource"]["businessStatus"]["text"] for e in tasks["entry"])
    assert states == ["information-requested", "rejected"]  # one per state and day; a pend needs nobody
    assert {e["resource"]["status"] for e in tasks["entry"]} == {"requested"}  # a later pend closes nothing
    stored = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(stored) == "rejected" and history(stored)[-2:] == ["accepted", "rejected"]


async def test_a_fhir_payers_final_answer_is_the_decision(api, store, tenant, demo_bundle):
    """``$inquire`` finding the claim decided: its ClaimResponse is posted as the adjudication (a
    FHIR payer sends no 835 to wait for), and the claim is paid."""
    await load_practice(api, demo_bundle)
    await adrain(store)
    claim = await claim_for(api, "enc-alvarez-1")
    with store.for_tenant(tenant).unit() as unit:
        unit.modify("Claim", claim["id"], lambda c: advance(c, "submitted", unit.now))
        claim = unit.read("Claim", claim["id"]).resource()
    benefit = {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                        "code": "benefit"}]}, "amount": {"value": 80.0, "currency": "USD"}}
    decided = {"resourceType": "ClaimResponse", "id": "payer-cr-1", "status": "active", "type": claim["type"],
               "use": "claim", "patient": claim["patient"], "created": "2026-03-01T09:00:00Z",
               "insurer": claim["insurer"], "outcome": "complete",
               "identifier": [{"system": "https://therabridge.dev/fhir/sid/payer-claim-number", "value": "PAYER77"}],
               "item": [{"itemSequence": 1, "adjudication": [benefit]}],
               "payment": {"amount": {"value": 80.0, "currency": "USD"}}}
    with store.for_tenant(tenant).unit() as unit:
        assert record_answer(unit, claim, decided, row=None, source="test:inquire") == "paid"
    assert lifecycle((await api.get(f"/fhir/Claim/{claim['id']}")).json()) == "paid"
    answers = (await api.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}")).json()
    assert answers["total"] == 1 and answers["entry"][0]["resource"]["outcome"] == "complete"
    tasks = (await api.get(f"/fhir/Task?focus=Claim/{claim['id']}")).json()
    assert tasks["total"] == 0
