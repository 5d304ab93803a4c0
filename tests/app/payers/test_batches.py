"""Claims to one payer go out together: one 837P file per batch, members and key fixed before
sending; a batch the payer refuses as a whole is split so one bad claim holds up no other."""
from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from app.payers.models import SUBMISSIONS as S
from payer_adapters.errors import PayerRejection, operation_outcome
from payer_adapters.registry import register_adapter
from payer_adapters.transports.filedrop import DirectoryDrop
from payer_adapters.x12_files import X12FileAdapter, batch_size, read_batch_numbers

from tests.flows import MEDICARE_VISITS, adrain, claim_for, connect, history, jobs, lifecycle, load_practice

RECEIPT = "https://therabridge.dev/fhir/StructureDefinition/claim-submission"


def receipt(claim: dict) -> dict[str, object]:
    ext = next(e for e in claim["extension"] if e["url"] == RECEIPT)
    return {e["url"]: next(v for k, v in e.items() if k.startswith("value")) for e in ext["extension"]}


def submissions(store, tenant: str) -> list:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(S).where(S.c.tenant_id == tenant).order_by(S.c.pk)).all()


async def test_claims_to_one_payer_share_one_file(api, store, tenant, payer_settings, demo_bundle, mailbox: Path,
                                                  route_to_sandbox):
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)},
            profile="medicare", auto_submit=True)
    await adrain(store)
    claims = [await claim_for(api, enc) for enc in MEDICARE_VISITS]
    assert {lifecycle(c) for c in claims} == {"submitted"}
    assert all(history(c)[:2] == ["queued", "submitted"] for c in claims)

    [name] = [p.name for p in (mailbox / "inbox").iterdir()]
    numbers = read_batch_numbers((mailbox / "inbox" / name).read_bytes())
    receipts = [receipt(c) for c in claims]
    assert sorted(numbers.claims) == sorted(c["identifier"][0]["value"] for c in claims)  # each claim, once
    assert {r["fileName"] for r in receipts} == {name}
    assert len({r["key"] for r in receipts}) == len(claims)  # each claim keeps its own key …
    assert len({r["batch"] for r in receipts}) == 1  # … and names the batch it went in
    assert name == f"837P_{receipts[0]['batch']}.x12"
    rows = submissions(store, tenant)
    assert {r.status for r in rows} == {"submitted"} and len({r.batch_key for r in rows}) == 1
    assert {r.set_controls for r in rows} == set(numbers.st)  # the 999 is matched per transaction set
    assert len(jobs(store, tenant, "send-claim-batch")) == 1
    # each claim's batching job came with its queued version, once, under its key (its later
    # writes, submitted and so on, queue none)
    batching = [json.loads(j.payload) for j in jobs(store, tenant, "submit-claims")]
    assert sorted((p["claim"], p["key"]) for p in batching) == sorted((c["id"], receipt(c)["key"]) for c in claims)


class RefusesWithPoison(X12FileAdapter):
    """An X12 mailbox whose payer refuses any submission carrying the poisoned claim."""

    poison: str = ""

    async def submit_claims(self, pkgs, *, idempotency_key):
        if any(p.patient_control_number == self.poison for p in pkgs):
            raise PayerRejection("refused", operation_outcome([{"code": "invalid", "diagnostics": "bad claim"}]))
        return await super().submit_claims(pkgs, idempotency_key=idempotency_key)


async def test_a_refused_batch_is_split_and_only_the_bad_claim_is_rejected(api, store, tenant, payer_settings,
                                                                          demo_bundle, mailbox: Path,
                                                                          route_to_sandbox):
    register_adapter("test-poison", lambda settings, *, http, control_numbers: RefusesWithPoison(
        "test-poison", DirectoryDrop(settings["root"]), settings, control_numbers), batch_size=batch_size)
    await load_practice(api, demo_bundle)
    connect(store, payer_settings, tenant, "payer-medicare", "test-poison", {"root": str(mailbox)},
            profile="medicare")
    await adrain(store)
    claims = [await claim_for(api, enc) for enc in ("enc-alvarez-1", "enc-alvarez-2")]
    RefusesWithPoison.poison = claims[1]["identifier"][0]["value"]
    for claim in claims:
        assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202
    await adrain(store)
    good, bad = [(await api.get(f"/fhir/Claim/{c['id']}")).json() for c in claims]
    assert lifecycle(good) == "submitted" and lifecycle(bad) == "rejected"
    [name] = [p.name for p in (mailbox / "inbox").iterdir()]
    assert read_batch_numbers((mailbox / "inbox" / name).read_bytes()).claims == [good["identifier"][0]["value"]]
    assert len(jobs(store, tenant, "send-claim-batch")) == 3  # the pair, then each claim alone
    tasks = (await api.get(f"/fhir/Task?focus=Claim/{bad['id']}")).json()
    assert tasks["total"] == 1
