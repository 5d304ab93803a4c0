"""The revenue-cycle KPIs: claims, remittances, an eligibility answer and an authorization
stored as the claim workflow and posting leave them, then every Measure evaluated for June 2026
through the API, with known numerators and denominators, strata and subject lists."""
from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import pytest

from app.fhir.exact_json import ExactNumber
from app.measures import definitions, facts
from app.measures.evaluate import evaluate
from fhir_mappings.vocabulary import CLAIM_LIFECYCLE, CLAIM_LIFECYCLE_HISTORY
from payer_adapters.x12.codes import CARC_SYSTEM, GROUP_SYSTEM

JUNE = "periodStart=2026-06-01&periodEnd=2026-06-30"
ADJ = "http://terminology.hl7.org/CodeSystem/adjudication"


def claim(cid: str, *, dos: str, lines: list[tuple[str, str, str]], states: dict[str, str], payer: str,
          clinician: str, patient: str, pre_auth: str | None = None) -> dict[str, Any]:
    total = sum(float(amount) for _, _, amount in lines)
    insurance: dict[str, Any] = {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/cov-{patient}"}}
    if pre_auth:
        insurance["preAuthRef"] = [pre_auth]
    return {
        "resourceType": "Claim", "id": cid, "status": "active", "use": "claim",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "patient": {"reference": f"Patient/{patient}"}, "created": dos + "T12:00:00Z",
        "insurer": {"reference": f"Organization/{payer}"}, "provider": {"reference": "Organization/practice"},
        "priority": {"coding": [{"code": "normal"}]},
        "careTeam": [{"sequence": 1, "provider": {"reference": f"Practitioner/{clinician}"},
                      "role": {"coding": [{"code": "primary"}]}}],
        "insurance": [insurance],
        "total": {"value": ExactNumber(f"{total:.2f}"), "currency": "USD"},
        "item": [{"sequence": n, "servicedDate": dos, "productOrService": {"coding": [{"code": code}]},
                  "modifier": [{"coding": [{"code": modifier}]}],
                  "net": {"value": ExactNumber(amount), "currency": "USD"}}
                 for n, (code, modifier, amount) in enumerate(lines, 1)],
        "extension": [{"url": CLAIM_LIFECYCLE, "valueCode": list(states)[-1]},
                      {"url": CLAIM_LIFECYCLE_HISTORY, "extension": [
                          {"url": code, "valueInstant": day + "T10:00:00Z"} for code, day in states.items()]}],
    }


def eob(eid: str, claim_id: str, *, created: str, paid: str,
        lines: list[tuple[str, str, list[tuple[str, str, str]]]]) -> dict[str, Any]:
    """``lines``: (charge, paid, [(group, carc, amount)])."""
    items = []
    for n, (charge, line_paid, adjustments) in enumerate(lines, 1):
        adjudication = [{"category": {"coding": [{"system": ADJ, "code": "submitted"}]},
                         "amount": {"value": ExactNumber(charge), "currency": "USD"}},
                        {"category": {"coding": [{"system": ADJ, "code": "benefit"}]},
                         "amount": {"value": ExactNumber(line_paid), "currency": "USD"}}]
        adjudication += [{"category": {"coding": [{"system": GROUP_SYSTEM, "code": g}]},
                          "reason": {"coding": [{"system": CARC_SYSTEM, "code": carc}]},
                          "amount": {"value": ExactNumber(amount), "currency": "USD"}} for g, carc, amount in adjustments]
        items.append({"sequence": n, "adjudication": adjudication})
    return {"resourceType": "ExplanationOfBenefit", "id": eid, "status": "active", "use": "claim",
            "claim": {"reference": f"Claim/{claim_id}"}, "patient": {"reference": "Patient/x"},
            "created": created + "T09:00:00Z", "outcome": "complete",
            "payment": {"amount": {"value": ExactNumber(paid), "currency": "USD"}}, "item": items}


SENT = "submitted"
A = claim("c-a", dos="2026-06-02", lines=[("97110", "GP", "100.00")], payer="payer-a", clinician="pt-1",
          patient="pat-1", states={"queued": "2026-06-03", SENT: "2026-06-03", "accepted": "2026-06-04",
                                   "paid": "2026-06-20"})
B = claim("c-b", dos="2026-06-05", lines=[("97530", "GO", "100.00"), ("97110", "GP", "100.00")], payer="payer-a",
          clinician="pt-2", patient="pat-2",
          states={SENT: "2026-06-06", "accepted": "2026-06-07", "partially-paid": "2026-06-25"})
C_HELD = claim("c-c", dos="2026-06-10", lines=[("97110", "GP", "150.00")], payer="payer-b", clinician="pt-1",
               patient="pat-1", states={"draft": "2026-06-10"})
C = claim("c-c", dos="2026-06-10", lines=[("97110", "GP", "150.00")], payer="payer-b", clinician="pt-1",
          patient="pat-1", states={SENT: "2026-06-11", "rejected": "2026-06-12"})
D = claim("c-d", dos="2026-06-12", lines=[("97110", "GP", "120.00")], payer="payer-b", clinician="pt-2",
          patient="pat-2", pre_auth="AUTH-1",
          states={SENT: "2026-06-13", "accepted": "2026-06-14", "denied": "2026-06-28"})
E = claim("c-e", dos="2026-03-01", lines=[("97110", "GP", "300.00")], payer="payer-a", clinician="pt-1",
          patient="pat-1", states={SENT: "2026-03-02", "accepted": "2026-03-03"})
EOBS = [
    eob("e-a", "c-a", created="2026-06-20", paid="80.00", lines=[("100.00", "80.00", [("CO", "45", "20.00")])]),
    eob("e-b", "c-b", created="2026-06-25", paid="60.00",
        lines=[("100.00", "60.00", [("CO", "45", "40.00")]), ("100.00", "0.00", [("CO", "197", "100.00")])]),
    eob("e-d", "c-d", created="2026-06-28", paid="0.00", lines=[("120.00", "0.00", [("CO", "50", "120.00")])]),
]
ELIGIBILITY = {"resourceType": "CoverageEligibilityResponse", "id": "elig-1", "status": "active",
               "purpose": ["benefits"], "patient": {"reference": "Patient/pat-1"}, "created": "2026-06-01T08:00:00Z",
               "request": {"reference": "CoverageEligibilityRequest/r1"}, "outcome": "complete",
               "insurer": {"reference": "Organization/payer-b"}}

#: measure id -> (numerator, denominator, score)
EXPECTED = {
    "clean-claim-rate": (3, 4, 0.75),            # C was held by the scrubber, then rejected
    "first-pass-yield": (1, 3, 0.3333),          # A paid in full; B partly, D denied
    "denial-rate": (2, 3, 0.6667),
    "days-in-ar": (2, 4, 23.7),                  # owed C 150 + E 300 = 450; June charges 570 / 30 days
    "aged-ar-over-90": (1, 2, 0.6667),           # E's 300 of 450
    "net-collection-rate": (2, 4, 0.4828),       # paid 140 / (570 - 280 contractual)
    "eligibility-verification-rate": (2, 4, 0.5),  # pat-1's answer of 06-01 covers A and C
    "authorization-rate": (1, 2, 0.5),           # D quotes one; B was denied for lacking one (CO-197)
}


def store_scenario(store: Any, tenant: str) -> None:
    with store.for_tenant(tenant).unit() as unit:
        unit.update("Claim", "c-c", C_HELD, fresh_id=True)
    with store.for_tenant(tenant).unit() as unit:
        unit.update("Claim", "c-c", C)
        for resource in [A, B, D, E, *EOBS, ELIGIBILITY]:
            unit.update(resource["resourceType"], resource["id"], resource, fresh_id=True)


def population(group: dict[str, Any], code: str) -> dict[str, Any]:
    [p] = [p for p in group["population"] if p["code"]["coding"][0]["code"] == code]
    return p


def strata(group: dict[str, Any], code: str) -> dict[str, dict[str, Any]]:
    [s] = [s for s in group["stratifier"] if s["code"][0]["coding"][0]["code"] == code]
    return {st["value"]["text"]: st for st in s.get("stratum", [])}


async def test_measures_are_published_read_only(api):
    r = await api.get("/fhir/Measure")
    assert r.status_code == 200, r.text
    ids = [e["resource"]["id"] for e in r.json()["entry"]]
    assert ids == ["clean-claim-rate", "first-pass-yield", "denial-rate", "days-in-ar", "aged-ar-over-90",
                   "net-collection-rate", "days-to-payment", "eligibility-verification-rate", "authorization-rate"]
    m = (await api.get("/fhir/Measure/denial-rate")).json()
    assert m["scoring"]["coding"][0]["code"] == "proportion" and m["url"].endswith("/Measure/denial-rate")
    assert m["description"] and m["definition"] and m["rationale"] and m["extension"][0]["valueString"]
    assert [g["code"]["coding"][0]["code"] for g in m["group"]] == ["count", "dollars"]
    assert (await api.get("/fhir/Measure?url=" + m["url"])).json()["total"] == 1
    assert (await api.get("/fhir/Measure/days-to-payment")).json()["scoring"]["coding"][0]["code"] == \
        "continuous-variable"
    assert (await api.get("/fhir/Measure/days-in-ar")).json()["scoring"]["coding"][0]["code"] == "ratio"
    for method, path in (("POST", "/fhir/Measure"), ("PUT", "/fhir/Measure/denial-rate"),
                         ("DELETE", "/fhir/Measure/denial-rate")):
        r = await api.request(method, path, json={"resourceType": "Measure", "id": "denial-rate", "status": "draft"})
        assert r.status_code == 405 and r.json()["resourceType"] == "OperationOutcome", (method, r.text)
    r = await api.get("/fhir/Measure/no-such-kpi")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    cap = (await api.get("/fhir/metadata")).json()
    [entry] = [e for e in cap["rest"][0]["resource"] if e["type"] == "Measure"]
    assert [i["code"] for i in entry["interaction"]] == ["read", "search-type"]
    assert [o["name"] for o in entry["operation"]] == ["evaluate-measure"]


async def test_each_kpi_over_a_known_month(api, store, tenant):
    store_scenario(store, tenant)
    for mid, (num, den, score) in EXPECTED.items():
        r = await api.get(f"/fhir/Measure/{mid}/$evaluate-measure?{JUNE}")
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["resourceType"] == "MeasureReport" and report["status"] == "complete"
        assert report["type"] == "summary" and report["measure"].startswith(definitions.canonical(mid))
        assert report["period"] == {"start": "2026-06-01", "end": "2026-06-30"}
        group = report["group"][0]
        assert (population(group, "numerator")["count"], population(group, "denominator")["count"]) == (num, den), mid
        assert group["measureScore"]["value"] == score, mid
    # days to payment: A paid 18 days after service, B 20: median 19
    dtp = (await api.get(f"/fhir/Measure/days-to-payment/$evaluate-measure?{JUNE}")).json()["group"][0]
    assert population(dtp, "measure-population")["count"] == 2 and dtp["measureScore"]["value"] == 19.0
    assert dtp["measureScore"]["unit"] == "d"
    # denial rate by dollars: B's denied line 100 + D's 120 of 420 adjudicated
    dollars = (await api.get(f"/fhir/Measure/denial-rate/$evaluate-measure?{JUNE}")).json()["group"][1]
    assert dollars["code"]["coding"][0]["code"] == "dollars"
    assert population(dollars, "numerator")["extension"][0]["valueMoney"]["value"] == 220.0
    assert population(dollars, "denominator")["extension"][0]["valueMoney"]["value"] == 420.0
    assert dollars["measureScore"]["value"] == 0.5238
    ar = (await api.get(f"/fhir/Measure/days-in-ar/$evaluate-measure?{JUNE}")).json()["group"][0]
    assert population(ar, "numerator")["extension"][0]["valueMoney"]["value"] == 450.0


async def test_strata_have_their_own_populations_and_scores(api, store, tenant):
    store_scenario(store, tenant)
    group = (await api.get(f"/fhir/Measure/denial-rate/$evaluate-measure?{JUNE}")).json()["group"][0]
    payers = strata(group, "payer")
    assert {k: (population(s, "numerator")["count"], population(s, "denominator")["count"], s["measureScore"]["value"])
            for k, s in payers.items()} == {"Organization/payer-a": (1, 2, 0.5), "Organization/payer-b": (1, 1, 1.0)}
    cpt = strata(group, "cpt")
    assert {k: (population(s, "numerator")["count"], population(s, "denominator")["count"]) for k, s in cpt.items()} \
        == {"97110": (2, 3), "97530": (1, 1)}
    assert set(strata(group, "discipline")) == {"GO", "GP"}
    assert population(strata(group, "discipline")["GO"], "denominator")["count"] == 1
    clin = strata(group, "clinician")
    assert {k: population(s, "denominator")["count"] for k, s in clin.items()} == \
        {"Practitioner/pt-1": 1, "Practitioner/pt-2": 2}


async def test_subject_list_names_the_claims(api, store, tenant):
    store_scenario(store, tenant)
    r = await api.post("/fhir/Measure/denial-rate/$evaluate-measure", json={"resourceType": "Parameters", "parameter": [
        {"name": "periodStart", "valueDate": "2026-06-01"}, {"name": "periodEnd", "valueDate": "2026-06-30"},
        {"name": "reportType", "valueCode": "subject-list"}]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["type"] == "subject-list"
    lists = {c["id"]: [e["item"]["reference"] for e in c.get("entry", [])] for c in report["contained"]}
    group = report["group"][0]
    num = population(group, "numerator")["subjectResults"]["reference"].removeprefix("#")
    den = population(group, "denominator")["subjectResults"]["reference"].removeprefix("#")
    assert lists[num] == ["Claim/c-b", "Claim/c-d"]
    assert lists[den] == ["Claim/c-a", "Claim/c-b", "Claim/c-d"]


async def test_bad_requests_are_refused_with_the_parameter_named(api):
    cases = [("denial-rate", "periodStart=2026-06-30&periodEnd=2026-06-01", 400, "periodEnd"),
             ("denial-rate", "periodStart=2026-06-31&periodEnd=2026-07-01", 400, "periodStart"),
             ("denial-rate", "periodStart=20260601&periodEnd=2026-07-01", 400, "periodStart"),
             ("denial-rate", "periodStart=2026-06-01", 400, "periodEnd"),
             ("denial-rate", f"{JUNE}&reportType=individual", 400, "reportType"),
             ("no-such-kpi", JUNE, 404, "Measure.id")]
    for mid, query, status, where in cases:
        r = await api.get(f"/fhir/Measure/{mid}/$evaluate-measure?{query}")
        assert r.status_code == status, (query, r.text)
        body = r.json()
        assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["expression"] == [where], query


async def test_another_tenants_claims_are_never_counted(api, store, tenant):
    other = "t-" + uuid.uuid4().hex[:12]
    store.ensure_tenant(other)
    store_scenario(store, other)
    report = (await api.get(f"/fhir/Measure/denial-rate/$evaluate-measure?{JUNE}&reportType=subject-list")).json()
    assert population(report["group"][0], "denominator")["count"] == 0
    assert all("entry" not in c for c in report["contained"])
    r = await api.get(f"/fhir/Measure/denial-rate/$evaluate-measure?{JUNE}",
                      headers={"x-test-scope": "patient/*.rs", "x-test-patient": "pat-1"})
    assert r.status_code == 403


def test_rebuild_gives_the_rows_the_writes_made_and_the_same_reports(store, tenant):
    store_scenario(store, tenant)
    ts = store.for_tenant(tenant)
    with ts.reading() as reader:
        written = facts.snapshot(reader)
        before = {m: evaluate(reader, m, date(2026, 6, 1), date(2026, 6, 30), "subject-list") for m in definitions.ids()}
    assert len(written["claim_fact"]) == 5 and len(written["remit_fact"]) == 3
    with ts.unit() as unit:
        facts.rebuild(unit)
    with ts.reading() as reader:
        assert facts.snapshot(reader) == written
        after = {m: evaluate(reader, m, date(2026, 6, 1), date(2026, 6, 30), "subject-list") for m in definitions.ids()}
    for m in definitions.ids():
        before[m].pop("date"), after[m].pop("date")
    assert after == before


@pytest.mark.parametrize("mid", ["clean-claim-rate", "days-to-payment"])
async def test_an_empty_month_has_counts_and_no_score(api, tenant, mid):
    group = (await api.get(f"/fhir/Measure/{mid}/$evaluate-measure?periodStart=2020-01-01&periodEnd=2020-01-31"))\
        .json()["group"][0]
    assert "measureScore" not in group and all(p["count"] == 0 for p in group["population"])


async def test_a_claim_a_client_writes_is_a_manual_change(api, store, tenant):
    body = {k: v for k, v in A.items() if k not in ("id", "extension")}
    r = await api.post("/fhir/Claim", json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    ts = store.for_tenant(tenant)

    def manual() -> bool:
        with ts.reading() as reader:
            rows = {row[1]: row for row in facts.snapshot(reader)["claim_fact"]}
        return rows[cid][16]

    assert manual() is True
    marker = "https://therabridge.dev/fhir/StructureDefinition/claim-manual-change"
    stored = (await api.get(f"/fhir/Claim/{cid}")).json()
    assert [e["url"] for e in stored["extension"]].count(marker) == 1
    stored["extension"] = [e for e in stored["extension"] if e["url"] != marker]  # a client cannot drop it
    assert (await api.put(f"/fhir/Claim/{cid}", json=stored)).status_code == 200
    assert [e["url"] for e in (await api.get(f"/fhir/Claim/{cid}")).json()["extension"]].count(marker) == 1
    with ts.unit() as unit:  # the server's own later write keeps it
        unit.modify("Claim", cid, lambda c: c.update(created="2026-06-03T12:00:00Z"))
    assert manual() is True
    with ts.unit() as unit:
        facts.rebuild(unit)
    assert manual() is True  # read back from the claim


async def test_a_write_off_and_a_void_take_claims_out_of_ar_from_their_day(api, store, tenant):
    store_scenario(store, tenant)
    task = {"resourceType": "Task", "id": "denial-c", "status": "completed", "intent": "order",
            "code": {"coding": [{"system": "https://therabridge.dev/fhir/CodeSystem/task-code", "code": "denial"}]},
            "focus": {"reference": "Claim/c-c"}, "businessStatus": {"text": "written-off"},
            "lastModified": "2026-06-20T10:00:00Z"}
    void = claim("c-void", dos="2026-03-01", lines=[("97110", "GP", "300.00")], payer="payer-a", clinician="pt-1",
                 patient="pat-1", states={SENT: "2026-06-22", "accepted": "2026-06-25"})
    void["extension"].append({"url": "https://therabridge.dev/fhir/StructureDefinition/claim-frequency",
                              "valueCode": "8"})
    void["related"] = [{"claim": {"reference": "Claim/c-e"},
                        "relationship": {"coding": [{"code": "prior"}]}}]
    with store.for_tenant(tenant).unit() as unit:
        unit.update("Task", "denial-c", task, fresh_id=True)
        unit.update("Claim", "c-void", void, fresh_id=True)

    async def owed(end: str) -> list[str]:
        r = await api.get(f"/fhir/Measure/aged-ar-over-90/$evaluate-measure?periodStart=2026-06-01&periodEnd={end}"
                          "&reportType=subject-list")
        return [e["item"]["reference"] for c in r.json()["contained"] if c["id"] == "denominator"
                for e in c.get("entry", [])]

    assert await owed("2026-06-19") == ["Claim/c-a", "Claim/c-b", "Claim/c-c", "Claim/c-d", "Claim/c-e"]
    assert await owed("2026-06-24") == ["Claim/c-b", "Claim/c-d", "Claim/c-e"]  # A paid, C written off on 06-20
    assert await owed("2026-06-30") == []  # B and D settled; the payer took E's void on 06-25
    clean = (await api.get(f"/fhir/Measure/clean-claim-rate/$evaluate-measure?{JUNE}")).json()["group"][0]
    assert (population(clean, "numerator")["count"], population(clean, "denominator")["count"]) == (4, 5)
