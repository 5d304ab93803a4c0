"""Two answers about one claim posted at once on two workers never lose a state: the 277CA's
rejection is being committed while the 999's acknowledgment, read before it, is written."""
from __future__ import annotations

import copy
import threading
import time
from pathlib import Path

from app.payers import posting
from payer_adapters.sandbox import Engine, Mailbox, load_config
from payer_adapters.x12 import decode

from tests.flows import NOW, adrain, history, lifecycle, queued_claim

TASK_CODES = "https://therabridge.dev/fhir/CodeSystem/task-code"


async def test_a_late_999_does_not_undo_a_277ca_rejection(api, store, tenant, payer_settings, mailbox: Path,
                                                           demo_bundle, route_to_sandbox):
    bundle = copy.deepcopy(demo_bundle)
    coverage = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "cov-alvarez")
    coverage["subscriberId"] = "1EG4TE5MK00"  # a member the payer does not know: its 277CA rejects the claim
    claim = await queued_claim(api, store, tenant, payer_settings, mailbox, bundle)
    await adrain(store)
    written = Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(NOW)
    answers = {name.split("_")[0]: decode((mailbox / "outbox" / name).read_bytes()) for name in written}
    assert sorted(answers) == ["277CA", "999"]
    assert answers["277CA"].claim_acknowledgments[0].claims[0].outcome == "error"

    ts = store.for_tenant(tenant)
    errors: list[BaseException] = []

    def post_999() -> None:
        try:
            with ts.unit() as unit:
                posting.post_999(unit, answers["999"], None)
        except BaseException as exc:  # reported below
            errors.append(exc)

    second = threading.Thread(target=post_999)
    with ts.unit() as first:
        posting.post_277ca(first, answers["277CA"])
        second.start()  # reads the claim as committed so far, then waits on this transaction's row
        time.sleep(0.3)
    second.join(timeout=30)
    assert not errors and not second.is_alive()

    posted = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(posted) == "rejected"
    assert {"submitted", "acknowledged", "rejected"} <= set(history(posted))
    tasks = (await api.get(f"/fhir/Task?focus=Claim/{claim['id']}")).json()
    assert [t["resource"]["code"]["coding"][0]["code"] for t in tasks["entry"]] == ["denial"]  # one work item
