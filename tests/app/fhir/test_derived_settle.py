"""Derived number rows (``Claim.outstanding``) are recomputed once per transaction, before it
commits, and before any search inside it: a search sees them current, and a claim created and
changed in one transaction ends with exactly one row of the right value."""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.fhir.search_params import parse_search
from tests.app.payers.test_ar_aging import claim, eob

SENT = {"submitted": "2026-06-01"}


def _outstanding(store: Any, tenant: str) -> dict[str, list[int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT r.id, n.value FROM search_number n JOIN resource r ON r.pk = n.res_pk "
            "WHERE n.param = 'outstanding' AND r.tenant_id = :t ORDER BY r.id, n.value"), {"t": tenant}).all()
    out: dict[str, list[int]] = {}
    for rid, value in rows:
        out.setdefault(rid, []).append(int(value))
    return out


def _owing(unit: Any, query: str) -> list[str]:
    reg = unit.ts.store.registry
    items = [tuple(part.split("=", 1)) for part in query.split("&")]
    return sorted(v.id for v in unit.search(parse_search(reg.get("Claim"), items, registry=reg)).matches)


def test_a_search_inside_the_transaction_sees_rows_its_writes_changed(tenant_store, store, tenant):
    with tenant_store.unit() as unit:
        unit.update("Claim", "s-1", claim("s-1", dos="2026-05-31", total="100.00", states=SENT))
        unit.update("Claim", "s-2", claim("s-2", dos="2026-05-31", total="40.00", states=SENT))
        assert _owing(unit, "outstanding=gt50") == ["s-1"]
        unit.update("ExplanationOfBenefit", "e-1", eob("e-1", "s-1", paid="70.00", created="2026-06-10"))
        assert _owing(unit, "outstanding=gt50") == []
        assert _owing(unit, "outstanding=30") == ["s-1"]
        # created and changed in the same transaction: its base (billed) changes again
        unit.update("Claim", "s-2", claim("s-2", dos="2026-05-31", total="60.00", states=SENT))
    assert _outstanding(store, tenant) == {"s-1": [300_000], "s-2": [600_000]}


def test_many_writes_in_one_transaction_leave_one_right_row_each(tenant_store, store, tenant):
    with tenant_store.unit() as unit:
        for n in range(20):
            unit.update("Claim", f"m-{n}", claim(f"m-{n}", dos="2026-05-31", total=f"{100 + n}.00", states=SENT))
        for n in range(0, 20, 2):
            unit.update("ExplanationOfBenefit", f"me-{n}", eob(f"me-{n}", f"m-{n}", paid="50.00", created="2026-06-10"))
        unit.update("Claim", "m-1", claim("m-1", dos="2026-05-31", total="1.00", states=SENT))
    with tenant_store.unit() as unit:
        unit.delete("ExplanationOfBenefit", "me-4")
        unit.update("ExplanationOfBenefit", "me-6", eob("me-6", "m-6", paid="6.00", created="2026-06-11"))
    rows = _outstanding(store, tenant)
    expected = {f"m-{n}": [(100 + n - (50 if n % 2 == 0 else 0)) * 10_000] for n in range(20)}
    expected["m-1"] = [10_000]
    expected["m-4"] = [104 * 10_000]
    expected["m-6"] = [100 * 10_000]
    assert rows == expected


def test_a_failed_transaction_leaves_the_rows_as_they_were(tenant_store, store, tenant):
    with tenant_store.unit() as unit:
        unit.update("Claim", "f-1", claim("f-1", dos="2026-05-31", total="100.00", states=SENT))
    try:
        with tenant_store.unit() as unit:
            unit.update("ExplanationOfBenefit", "fe-1", eob("fe-1", "f-1", paid="100.00", created="2026-06-10"))
            raise RuntimeError("the caller fails after the write")
    except RuntimeError:
        pass
    assert _outstanding(store, tenant) == {"f-1": [1_000_000]}
