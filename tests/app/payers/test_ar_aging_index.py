"""The A/R aging from the search index (one statement) answers exactly what reading every claim
and EOB answers: on the aging fixtures, and on a few hundred generated claims with voids,
replacements, written-off denials, reversals, claims without service dates and EOBs dated
later, for several days and both bases. Data written before the index rows existed is read."""
from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from app.db import SearchDate, SearchNumber
from app.payers import aging, aging_sql
from fhir_mappings.vocabulary import CLAIM_FREQUENCY

from tests.app.payers.test_ar_aging import claim, eob, store_all


def report(a: aging.Aging) -> dict[str, Any]:
    return {key: (insurer, [(b.label, b.count, b.outstanding, sorted(b.claims)) for b in buckets])
            for key, (insurer, buckets) in a.payers.items()}


def summary(a: aging.Aging) -> dict[str, Any]:
    return {key: (insurer, [(b.label, b.count, b.outstanding) for b in buckets]) for key, (insurer, buckets)
            in a.payers.items()}


def both(store: Any, tenant: str, as_of: date, basis: str) -> tuple[dict[str, Any], dict[str, Any]]:
    with store.for_tenant(tenant).reading() as reader:
        assert aging_sql.usable(reader, aging.settings()["sent"])
        read = aging.aging_by_reading(reader, as_of, basis)
        # without the claim lists, the statement sums per payer and bucket itself
        assert summary(aging.aging(reader, as_of, basis, claims=False)) == summary(read)
        return report(aging.aging(reader, as_of, basis)), report(read)


def generated(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    start = date(2026, 1, 1)
    for i in range(n):
        dos = start + timedelta(days=rng.randrange(0, 170))
        sent = dos + timedelta(days=rng.randrange(0, 20))
        states = {"clean": dos.isoformat(), "submitted": sent.isoformat()}
        roll = rng.random()
        if roll < 0.1:
            states = {"clean": dos.isoformat()}  # never sent
        elif roll < 0.5:
            states[rng.choice(["paid", "partially-paid", "denied", "acknowledged"])] = \
                (sent + timedelta(days=rng.randrange(5, 60))).isoformat()
        total = f"{rng.randrange(1000, 90000) / 100:.2f}"
        c = claim(f"g{i}", dos=dos.isoformat(), total=total, states=states,
                  insurer=rng.choice(["payer-a", "payer-b", "payer-c"]),
                  status="cancelled" if rng.random() < 0.05 else "active")
        if rng.random() < 0.05:
            c["extension"].append({"url": CLAIM_FREQUENCY, "valueCode": "8"})
        if rng.random() < 0.1:  # no service date on the line: the billable period, else the day sent
            c["item"][0].pop("servicedDate")
            if rng.random() < 0.5:
                c["billablePeriod"] = {"start": (dos - timedelta(days=3)).isoformat(), "end": dos.isoformat()}
        if i and rng.random() < 0.08:
            c["related"] = [{"claim": {"reference": f"Claim/g{rng.randrange(0, i)}"},
                             "relationship": {"coding": [{"code": "prior"}]}}]
        out.append(c)
        if "submitted" in states and rng.random() < 0.6:
            paid = round(float(total) * rng.choice([0.5, 0.8, 1.0]), 2)
            co = round((float(total) - paid) * rng.choice([0, 0.5, 1]), 2)
            day = (sent + timedelta(days=rng.randrange(3, 90))).isoformat()
            out.append(eob(f"e{i}", f"g{i}", paid=f"{paid:.2f}", created=day, co=f"{co:.2f}" if co else None))
            if rng.random() < 0.1:
                out.append(eob(f"r{i}", f"g{i}", paid=f"{-paid:.2f}",
                               created=(date.fromisoformat(day) + timedelta(days=20)).isoformat(),
                               co=f"{-co:.2f}" if co else None))
    for i in range(0, n, 17):  # denials written off
        out.append({"resourceType": "Task", "id": f"wo{i}", "status": "completed", "intent": "order",
                    "code": {"coding": [{"system": "https://therabridge.dev/fhir/CodeSystem/task-code",
                                         "code": "denial"}]},
                    "focus": {"reference": f"Claim/g{i}"}, "businessStatus": {"text": "written-off"}})
    return out


async def test_the_index_answers_what_reading_answers(store, tenant):
    store_all(store, tenant)
    with store.for_tenant(tenant).unit() as unit:
        for r in generated(300, 11):
            unit.update(r["resourceType"], r["id"], r, fresh_id=True)
    seen = 0
    for as_of in (date(2026, 2, 15), date(2026, 4, 30), date(2026, 6, 24), date(2026, 6, 30), date(2026, 9, 1),
                  date.today()):  # the last: every answer counts, the stored outstanding is used
        for basis in ("service", "submission"):
            fast, read = both(store, tenant, as_of, basis)
            assert fast == read, (as_of, basis)
            seen += sum(b[1] for _, buckets in fast.values() for b in buckets)
    assert seen > 500  # the reports were not empty


async def test_claims_written_before_the_index_rows_are_read(store, tenant):
    store_all(store, tenant)
    with store.engine.begin() as conn:  # as a database upgraded with claims already stored holds them
        d = SearchDate.__table__
        conn.execute(d.delete().where(d.c.tenant_id == tenant, d.c.type == "Claim", d.c.param == "sent"))
        n = SearchNumber.__table__
        conn.execute(n.delete().where(n.c.tenant_id == tenant, n.c.type == "Claim"))
    with store.for_tenant(tenant).reading() as reader:
        assert not aging_sql.usable(reader, aging.settings()["sent"])
        got = report(aging.aging(reader, date(2026, 6, 30), "service"))
        assert got == report(aging.aging_by_reading(reader, date(2026, 6, 30), "service"))
        assert sum(b[1] for _, buckets in got.values() for b in buckets) == 6
