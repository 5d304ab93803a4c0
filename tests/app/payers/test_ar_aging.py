"""A/R aging: claims stored as posting leaves them (lifecycle history, EOBs with payments,
contractual adjustments and reversals), then ``Claim/$ar-aging`` read through the API."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.fhir.exact_json import ExactNumber
from fhir_mappings.vocabulary import CLAIM_LIFECYCLE, CLAIM_LIFECYCLE_HISTORY
from payer_adapters.x12.codes import CARC_SYSTEM, GROUP_SYSTEM

AS_OF = "2026-06-30"


def claim(cid: str, *, dos: str, total: str, states: dict[str, str], insurer: str = "payer-a",
          status: str = "active") -> dict[str, Any]:
    current = list(states)[-1]
    return {
        "resourceType": "Claim", "id": cid, "status": status, "use": "claim",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "patient": {"reference": "Patient/pat-aging"}, "created": dos + "T12:00:00Z",
        "insurer": {"reference": f"Organization/{insurer}"}, "provider": {"reference": "Organization/practice"},
        "priority": {"coding": [{"code": "normal"}]},
        "total": {"value": ExactNumber(total), "currency": "USD"},
        "item": [{"sequence": 1, "servicedDate": dos, "productOrService": {"coding": [{"code": "97110"}]},
                  "net": {"value": ExactNumber(total), "currency": "USD"}}],
        "extension": [{"url": CLAIM_LIFECYCLE, "valueCode": current},
                      {"url": CLAIM_LIFECYCLE_HISTORY, "extension": [
                          {"url": code, "valueInstant": day + "T10:00:00Z"} for code, day in states.items()]}],
    }


def eob(eid: str, claim_id: str, *, paid: str, created: str, co: str | None = None) -> dict[str, Any]:
    adjudication = [{"category": {"coding": [{"system": GROUP_SYSTEM, "code": "CO"}]},
                     "reason": {"coding": [{"system": CARC_SYSTEM, "code": "45"}]},
                     "amount": {"value": ExactNumber(co), "currency": "USD"}}] if co else []
    return {"resourceType": "ExplanationOfBenefit", "id": eid, "status": "active", "use": "claim",
            "claim": {"reference": f"Claim/{claim_id}"}, "patient": {"reference": "Patient/pat-aging"},
            "created": created + "T09:00:00Z", "outcome": "complete",
            "payment": {"amount": {"value": ExactNumber(paid), "currency": "USD"}},
            "item": [{"sequence": 1, "adjudication": adjudication}]}


SENT = {"queued": "2026-06-01", "submitted": "2026-06-01"}
CLAIMS = [
    claim("c-30", dos="2026-05-31", total="100.00", states=SENT),                          # age 30
    claim("c-31", dos="2026-05-30", total="200.00", states={**SENT, "partially-paid": "2026-06-20"}),  # 31
    claim("c-120", dos="2026-03-02", total="300.00", states={"submitted": "2026-03-05"}),  # 120
    claim("c-121", dos="2026-03-01", total="400.00", states={"submitted": "2026-03-05"}, insurer="payer-b"),
    claim("c-paid", dos="2026-05-01", total="80.00", states={"submitted": "2026-05-02", "paid": "2026-06-10"}),
    claim("c-paid-later", dos="2026-06-15", total="150.00", states={"submitted": "2026-06-16", "paid": "2026-07-05"}),
    claim("c-reversed", dos="2026-06-01", total="90.00", states={"submitted": "2026-06-02", "paid": "2026-06-05"},
          insurer="payer-b"),
    claim("c-cancelled", dos="2026-05-01", total="70.00", states={"submitted": "2026-05-02"}, status="cancelled"),
    claim("c-clean", dos="2026-06-01", total="60.00", states={"clean": "2026-06-01"}),
    claim("c-sent-later", dos="2026-06-01", total="50.00", states={"submitted": "2026-07-02"}),
]
EOBS = [
    eob("e-31", "c-31", paid="120.00", created="2026-06-20", co="30.00"),
    eob("e-paid", "c-paid", paid="60.00", created="2026-06-10", co="20.00"),
    eob("e-paid-later", "c-paid-later", paid="150.00", created="2026-07-05"),
    eob("e-rev-pay", "c-reversed", paid="90.00", created="2026-06-05"),
    eob("e-rev", "c-reversed", paid="-90.00", created="2026-06-25"),
]
EXPECTED = {"c-30": ("payer-a", "0-30", "100.00"), "c-31": ("payer-a", "31-60", "50.00"),
            "c-120": ("payer-a", "91-120", "300.00"), "c-121": ("payer-b", "over-120", "400.00"),
            "c-paid-later": ("payer-a", "0-30", "150.00"), "c-reversed": ("payer-b", "0-30", "90.00")}


def store_all(store: Any, tenant: str) -> None:
    with store.for_tenant(tenant).unit() as unit:
        for resource in [*CLAIMS, *EOBS]:
            unit.update(resource["resourceType"], resource["id"], resource, fresh_id=True)


def parts(param: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [p for p in param.get("part", []) if p["name"] == name]


def value(param: dict[str, Any], name: str) -> Any:
    [p] = parts(param, name)
    return next(v for k, v in p.items() if k.startswith("value"))


def buckets(param: dict[str, Any]) -> dict[str, tuple[int, str, list[str]]]:
    return {value(b, "range"): (value(b, "count"), f"{value(b, 'outstanding')['value']:.2f}",
                                [c["valueReference"]["reference"].removeprefix("Claim/") for c in parts(b, "claim")])
            for b in parts(param, "bucket")}


async def test_the_aging_report_buckets_what_payers_still_owe(api, store, tenant):
    store_all(store, tenant)
    r = await api.get(f"/fhir/Claim/$ar-aging?asOf={AS_OF}")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["resourceType"] == "Parameters"
    payers = {value(p, "insurer")["reference"].removeprefix("Organization/"): buckets(p)
              for p in report["parameter"] if p["name"] == "payer"}
    got = {cid: (payer, label) for payer, bs in payers.items() for label, (_, _, cids) in bs.items() for cid in cids}
    assert got == {cid: (payer, label) for cid, (payer, label, _) in EXPECTED.items()}
    # Each bucket's count and total are exactly its claims'.
    for payer, bs in payers.items():
        for label, (count, total, cids) in bs.items():
            assert count == len(cids)
            assert Decimal(total) == sum((Decimal(EXPECTED[c][2]) for c in cids), Decimal(0))
    [total] = [p for p in report["parameter"] if p["name"] == "total"]
    assert value(total, "count") == len(EXPECTED)
    assert Decimal(str(value(total, "outstanding")["value"])) == sum(Decimal(v[2]) for v in EXPECTED.values())
    assert r.text.count('"outstanding","valueMoney":{"value":1090.00') == 1  # exact money, two decimals
    assert buckets(total)["0-30"][:2] == (3, "340.00")

    # Drill down: the bucket's Claim references read back exactly its claims.
    for cid in payers["payer-a"]["91-120"][2]:
        assert (await api.get(f"/fhir/Claim/{cid}")).json()["total"]["value"] == 300


async def test_aging_by_submission_date_and_on_another_day(api, store, tenant):
    store_all(store, tenant)
    by_submission = (await api.get(f"/fhir/Claim/$ar-aging?asOf={AS_OF}&basis=submission")).json()
    [b] = [p for p in by_submission["parameter"] if p["name"] == "payer" and
           value(p, "insurer")["reference"] == "Organization/payer-b"]
    assert buckets(b)["91-120"][2] == ["c-121"]  # sent 2026-03-05: 117 days before
    # Before the reversal the reversed claim was paid; before anything was sent, nothing is owed.
    early = (await api.get("/fhir/Claim/$ar-aging?asOf=2026-06-24")).json()
    owed = {c for p in early["parameter"] if p["name"] == "payer" for _, (_, _, cs) in buckets(p).items() for c in cs}
    assert "c-reversed" not in owed and "c-paid-later" in owed and "c-31" in owed
    nothing = (await api.get("/fhir/Claim/$ar-aging?asOf=2026-01-01")).json()
    assert [p for p in nothing["parameter"] if p["name"] == "payer"] == []


async def test_bad_aging_requests_are_refused(api, store, tenant):
    for query, where in (("asOf=2026-02-30", "asOf"), ("asOf=20260228", "asOf"), ("basis=posting", "basis")):
        r = await api.get(f"/fhir/Claim/$ar-aging?{query}")
        assert r.status_code == 400, r.text
        assert r.json()["resourceType"] == "OperationOutcome" and r.json()["issue"][0]["expression"] == [where]


async def test_ar_searches_on_claims(api, store, tenant):
    store_all(store, tenant)

    async def ids(query: str) -> list[str]:
        r = await api.get(f"/fhir/Claim?{query}")
        assert r.status_code == 200, r.text
        return [e["resource"]["id"] for e in r.json().get("entry", [])]

    assert sorted(await ids("insurer=Organization/payer-b")) == ["c-121", "c-reversed"]
    assert sorted(await ids("lifecycle=submitted&service-date=lt2026-04-01")) == ["c-120", "c-121"]
    assert await ids("insurer=Organization/payer-a&status=active&lifecycle=submitted,partially-paid"
                     "&_sort=service-date") == ["c-120", "c-31", "c-30", "c-sent-later"]
    assert (await ids("service-date=ge2026-06-01&_sort=-service-date"))[0] == "c-paid-later"
    assert sorted(await ids("created=2026-03")) == ["c-120", "c-121"]


async def test_the_report_is_the_tenants_own_and_for_billers(api, store, tenant):
    import json
    from pathlib import Path

    store_all(store, tenant)
    biller = " ".join(s for s in json.loads((Path(__file__).parents[3] / "app/auth/data/roles.json").read_text())["biller"]
                      if "/" in s)
    r = await api.get(f"/fhir/Claim/$ar-aging?asOf={AS_OF}", headers={"x-test-scope": biller})
    assert r.status_code == 200, r.text
    assert len([p for p in r.json()["parameter"] if p["name"] == "payer"]) == 2
    other = await api.get(f"/fhir/Claim/$ar-aging?asOf={AS_OF}", headers={"x-test-tenant": f"{tenant}-other"})
    assert other.status_code == 200 and [p["name"] for p in other.json()["parameter"]] == ["asOf", "basis", "total"]
    patient = await api.get(f"/fhir/Claim/$ar-aging?asOf={AS_OF}",
                            headers={"x-test-scope": "patient/Claim.rs patient/ExplanationOfBenefit.rs patient/Task.rs",
                                     "x-test-patient": "pat-aging"})
    assert patient.status_code == 403
    no_scope = await api.get("/fhir/Claim/$ar-aging", headers={"x-test-scope": "user/Patient.rs"})
    assert no_scope.status_code == 403
