"""The A/R aging from the claim facts (one statement) answers exactly what an independent
reading of every claim, EOB and Task answers (``by_reading`` below, the definition written out
in Python): on the aging fixtures, and on a few hundred generated claims with voids,
replacements, cancellations, written-off denials, reversals, claims without service dates and
EOBs dated later, for several days and both bases; and the facts' stored settled amounts stay
what the remittances sum to as answers come and go."""
from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from app.claims.by_lifecycle import resources_of_type
from app.claims.lifecycle import VOID_TAKEN, rank, voided_by
from app.claims.timely_filing import first_service_day
from app.measures import ar_aging, facts
from app.measures.tables import CLAIM
from app.payers import aging
from fhir_mappings.vocabulary import CLAIM_FREQUENCY, CLAIM_LIFECYCLE_HISTORY

from tests.app.payers.test_ar_aging import claim, eob, store_all


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text[:10]) if text else None


def _history(c: dict[str, Any]) -> dict[str, date]:
    ext = next((e for e in c.get("extension") or [] if e["url"] == CLAIM_LIFECYCLE_HISTORY), {"extension": []})
    return {e["url"]: _day(e["valueInstant"]) for e in ext["extension"]}  # type: ignore[misc]


def _sent_on(c: dict[str, Any]) -> date | None:
    return min((d for code, d in _history(c).items() if rank(code) >= rank("submitted")), default=None)


def _prior(c: dict[str, Any]) -> str | None:
    for rel in c.get("related") or []:
        if any(x.get("code") == "prior" for x in rel["relationship"]["coding"]):
            return rel["claim"]["reference"].removeprefix("Claim/")
    return None


def _is_void(c: dict[str, Any]) -> bool:
    return any(e["url"] == CLAIM_FREQUENCY and e.get("valueCode") == "8" for e in c.get("extension") or [])


def by_reading(resources: list[dict[str, Any]], as_of: date, basis: str) -> dict[str, Any]:
    """payer -> [(bucket, count, owed, claims)], from the resources as stored."""
    claims = [r for r in resources if r["resourceType"] == "Claim"]
    gone: dict[str, date] = {}  # claim -> the day it left A/R (replaced, voided, written off)
    replaced: set[str] = set()  # a void or a correction took it out (a cancelled claim's reason)

    def leave(cid: str | None, day: date | None, written_off: bool = False) -> None:
        if cid and day:
            gone[cid] = min(day, gone.get(cid, day))
            if not written_off:
                replaced.add(cid)
    for c in claims:
        if _is_void(c):
            hist = _history(c)
            leave(voided_by(c), min((d for code, d in hist.items() if code in VOID_TAKEN), default=None))
        else:
            leave(_prior(c), _sent_on(c))
    for t in resources:
        if (t["resourceType"] == "Task" and t["status"] == "completed"
                and (t.get("businessStatus") or {}).get("text") == "written-off"):
            leave(t["focus"]["reference"].removeprefix("Claim/"),
                  _day(t.get("lastModified") or t["meta"]["lastUpdated"]), written_off=True)
    settled: dict[str, Decimal] = {}
    for e in resources:
        if e["resourceType"] == "ExplanationOfBenefit" and _day(e.get("created")) <= as_of:
            found = aging.settled(e)
            if found:
                settled[found[0]] = settled.get(found[0], Decimal(0)) + found[1]
    out: dict[str, list[aging.Bucket]] = {}
    for c in claims:
        sent = _sent_on(c)
        if sent is None or sent > as_of or _is_void(c) or c["status"] == "entered-in-error":
            continue
        if (c["id"] in gone and gone[c["id"]] <= as_of) or (c["status"] == "cancelled" and c["id"] not in replaced):
            continue
        owed = Decimal(str(c["total"]["value"])) - settled.get(c["id"], Decimal(0))
        start = sent if basis == "submission" else (first_service_day(c) or sent)
        if owed <= 0 or start > as_of:
            continue
        age = (as_of - start).days
        buckets = out.setdefault(c["insurer"]["reference"], aging.new_buckets())
        next(b for b in buckets if b.low <= age and (b.high is None or age <= b.high)).add(c["id"], owed)
    return {key: [(b.label, b.count, b.outstanding, sorted(b.claims)) for b in buckets] for key, buckets in out.items()}


def report(a: aging.Aging) -> dict[str, Any]:
    return {key: [(b.label, b.count, b.outstanding, sorted(b.claims)) for b in buckets]
            for key, (_, buckets) in a.payers.items()}


def summary(rep: dict[str, Any]) -> dict[str, Any]:
    return {key: [b[:3] for b in buckets] for key, buckets in rep.items()}


def stored(store: Any, tenant: str) -> list[dict[str, Any]]:
    with store.for_tenant(tenant).reading() as reader:
        return [r for rtype in ("Claim", "ExplanationOfBenefit", "Task") for r in resources_of_type(reader, rtype)]


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


async def test_the_facts_answer_what_reading_answers(store, tenant):
    store_all(store, tenant)
    with store.for_tenant(tenant).unit() as unit:
        for r in generated(300, 11):
            unit.update(r["resourceType"], r["id"], r, fresh_id=True)
    resources = stored(store, tenant)
    seen = 0
    for as_of in (date(2026, 2, 15), date(2026, 4, 30), date(2026, 6, 24), date(2026, 6, 30), date(2026, 9, 1),
                  date.today()):  # the last: every answer counts, each claim's stored settled amount is used
        for basis in ("service", "submission"):
            want = by_reading(resources, as_of, basis)
            with store.for_tenant(tenant).reading() as reader:
                assert report(ar_aging.report(reader, as_of, basis)) == want, (as_of, basis)
                # without the claim lists, the statement sums per payer and bucket itself
                assert summary(report(ar_aging.report(reader, as_of, basis, claims=False))) == summary(want)
            seen += sum(b[1] for buckets in want.values() for b in buckets)
    assert seen > 500  # the reports were not empty


def _settled_cents(store: Any, tenant: str) -> dict[str, int]:
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.select(CLAIM.c.claim_id, CLAIM.c.settled_cents).where(CLAIM.c.tenant_id == tenant)).all())


async def test_stored_settled_amounts_follow_the_answers(store, tenant):
    store_all(store, tenant)
    ts = store.for_tenant(tenant)
    written = _settled_cents(store, tenant)
    assert written["c-31"] == 15000 and written["c-reversed"] == 0 and written["c-30"] == 0
    with ts.unit() as unit:  # a claim and its answer in one transaction
        unit.update("Claim", "c-new", claim("c-new", dos="2026-06-02", total="40.00", states={"submitted": "2026-06-03"}))
        unit.update("ExplanationOfBenefit", "e-new", eob("e-new", "c-new", paid="25.00", created="2026-06-20"))
    assert _settled_cents(store, tenant)["c-new"] == 2500
    with ts.unit() as unit:  # an answer taken back (entered in error), another deleted
        unit.update("ExplanationOfBenefit", "e-new", {**eob("e-new", "c-new", paid="25.00", created="2026-06-20"),
                                                      "status": "entered-in-error"})
        unit.delete("ExplanationOfBenefit", "e-31")
    after = _settled_cents(store, tenant)
    assert after["c-new"] == 0 and after["c-31"] == 0
    with ts.unit() as unit:  # a deleted claim leaves the facts, and so the aging
        unit.delete("Claim", "c-30")
    after.pop("c-30")
    assert _settled_cents(store, tenant) == after
    with ts.reading() as reader:
        assert "c-30" not in {c for _, buckets in ar_aging.report(reader, date(2026, 6, 30), "service").payers.values()
                              for b in buckets for c in b.claims}
    with ts.unit() as unit:  # a rebuild makes the same rows
        facts.rebuild(unit)
    assert _settled_cents(store, tenant) == after
