"""A batch of claim generations reads the practice's payer rule packs once, not once per claim,
and a pack written in the same transaction is seen by the claims generated after it."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from app.claims import workflow
from app.claims.rule_packs import add_rule
from tests.flows import adrain, load_practice

RULE = {"id": "hold-97530", "text": "Medicare denies 97530 for this practice: hold", "severity": "error",
        "match": {"codes": ["97530"]}}
VISITS = ("enc-alvarez-1", "enc-alvarez-2", "enc-brooks-1", "enc-kim-1", "enc-maxwell-1")


async def test_one_read_of_the_packs_per_batch(api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    await adrain(store)
    reads: list[object] = []

    def count(conn, cursor, statement, params, context, many):  # type: ignore[no-untyped-def]
        # the packs' search: a statement with the parameters Library and active (writes and the
        # pack's own checks are not it)
        values = list(params.values()) if isinstance(params, dict) else list(params or ())
        if "Library" in values and "active" in values:
            reads.append(params)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        with store.for_tenant(tenant).unit() as unit:
            before = [workflow.generate_claim(unit, e, profile=None, now=unit.now)[2] for e in VISITS]
        assert len(reads) == 1
        reads.clear()
        with store.for_tenant(tenant).unit() as unit:
            first = workflow.generate_claim(unit, "enc-brooks-1", profile=None, now=unit.now)[2]
            add_rule(unit, "Organization/payer-medicare", RULE, date(2026, 1, 1))
            held = [workflow.generate_claim(unit, e, profile=None, now=unit.now)[2] for e in VISITS]
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert len(reads) == 2  # the pack written in the transaction made the first read stale, once
    assert not first and not before[0] and not before[1]
    # now held: Alvarez's two Medicare visits bill 97530; Maxwell's 97530 goes to Acme, untouched
    assert held == [True, True, *before[2:]]
