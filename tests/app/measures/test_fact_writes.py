"""The facts tables' rows as written at commit: what goes in comes back, an upsert replaces the
row, and ``manual`` once true stays true."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from app.measures import facts
from app.measures.tables import CLAIM, CODE, REMIT


def _claim(claim_id: str, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "claim_id": claim_id, "patient_id": "pat-1", "payer": 'Organization/"odd",{payer}\\x',
        "clinician": None, "service_date": date(2026, 11, 2), "charge_cents": 12345, "is_void": False,
        "excluded": False, "cancelled": False, "prior_claim_id": None, "replaces_on": None,
        "submitted_on": date(2026, 11, 3), "front_accepted_on": None, "rejected_on": None,
        "adjudicated_on": None, "first_outcome": None, "manual": True, "pre_auth": False,
    }
    row.update(changes)
    return row


def _pending(row: dict[str, object], codes: list[tuple[str, str]], fresh: bool) -> facts._Pending:
    return facts._Pending(row, [{"claim_id": row["claim_id"], "kind": k, "value": v} for k, v in codes],
                          rewrite_codes=True, fresh=fresh)


def test_claim_rows_round_trip_and_upsert(store, tenant):
    with store.engine.begin() as conn:
        facts._flush(conn, tenant, {
            "c1": _pending(_claim("c1"), [("cpt", "97530"), ("discipline", "GO")], fresh=True),
            "c2": _pending(_claim("c2", manual=False, payer=None, charge_cents=0), [("cpt", "97110")], fresh=True)})
    with store.engine.begin() as conn:  # the next answer: c1 adjudicated, written as not manual
        facts._flush(conn, tenant, {"c1": _pending(
            _claim("c1", manual=False, adjudicated_on=date(2026, 11, 20), first_outcome="paid"),
            [("cpt", "97530")], fresh=False)})
    with store.engine.connect() as conn:
        rows = {r.claim_id: r for r in conn.execute(sa.select(CLAIM).where(CLAIM.c.tenant_id == tenant))}
        codes = sorted(tuple(r) for r in conn.execute(
            sa.select(CODE.c.claim_id, CODE.c.kind, CODE.c.value).where(CODE.c.tenant_id == tenant)))
    c1, c2 = rows["c1"], rows["c2"]
    assert c1.manual is True  # once true, stays true
    assert (c1.adjudicated_on, c1.first_outcome) == (date(2026, 11, 20), "paid")
    assert c1.payer == 'Organization/"odd",{payer}\\x' and c1.clinician is None
    assert (c1.service_date, c1.charge_cents, c1.settled_cents) == (date(2026, 11, 2), 12345, 0)
    assert (c2.manual, c2.payer, c2.charge_cents) == (False, None, 0)
    assert codes == [("c1", "cpt", "97530"), ("c2", "cpt", "97110")]  # c1's codes rewritten


def test_remittance_rows_upsert_on_their_eob(store, tenant):
    row = {"tenant_id": tenant, "eob_id": "eob-1", "claim_id": "c9", "posted_on": date(2026, 11, 21),
           "active": True, "reversal": False, "paid_cents": 9000, "contractual_cents": 1000,
           "closing_cents": 1000, "denied_cents": 0, "auth_denial": False}
    with store.engine.begin() as conn:
        upsert = facts._statement(conn, "upsert:ExplanationOfBenefit")
        conn.execute(upsert, [row])
        conn.execute(upsert, [{**row, "active": False, "paid_cents": -9000}])
    with store.engine.connect() as conn:
        [got] = conn.execute(sa.select(REMIT).where(REMIT.c.tenant_id == tenant)).all()
    assert (got.active, got.paid_cents, got.posted_on) == (False, -9000, date(2026, 11, 21))
