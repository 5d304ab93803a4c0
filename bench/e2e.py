"""Claims through the payer side per second: ``$submit`` → ``submit-claims`` jobs → 837P files in an
X12 mailbox → the sandbox answers (999, 277CA, 835) → ``collect-responses`` → posting (EOBs,
PaymentReconciliation, lifecycle). One process, one worker, x12-directory, one claim per file.

    python -m bench.e2e [--claims 200] [--database-url postgresql+psycopg://postgres@127.0.0.1/benchdb]

Without ``--database-url`` a fresh SQLite file in a temporary folder is used. Prints JSON:
seconds and claims/s per phase (submit, payer, collect+post).
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
from cryptography.fernet import Fernet

from app.bootstrap import build_store, load_demo
from app.claims.gather import find_resources
from app.db import make_engine
from app.jobs import Worker
from app.migrations import upgrade
from app.payers import directory
from app.payers.inbound import messages, queue_collection
from app.payers.submission import queue_claim
from app.settings import Settings
from payer_adapters.sandbox import Engine, Mailbox, load_config

PCN = "https://therabridge.dev/fhir/sid/patient-control-number"


def drain(worker: Worker) -> int:
    total = 0
    while (n := worker.run_once()):
        total += n
    return total


def run(claims: int, database_url: str | None) -> dict[str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="therabridge-bench-e2e-"))
    url = database_url or f"sqlite:///{tmp / 'bench.db'}"
    settings = Settings(database_url=url, var_dir=str(tmp), key_encryption_key=Fernet.generate_key().decode())
    engine = make_engine(url)
    upgrade(engine)
    store = build_store(settings, engine)
    tenant = "bench-" + datetime.now(timezone.utc).strftime("%H%M%S%f")
    store.ensure_tenant(tenant)
    load_demo(store, tenant)
    worker = Worker(store, batch=50)
    drain(worker)  # generate the demo claims
    mailbox = tmp / "mailbox"
    directory.add(store, settings, tenant, "payer-medicare", "x12-directory", {"root": str(mailbox)})
    with store.for_tenant(tenant).unit() as unit:
        template = next(c for c in find_resources(unit, "Claim", [("lifecycle", "clean")])
                        if c["insurer"]["reference"] == "Organization/payer-medicare")
        ids = []
        for n in range(claims):
            claim = copy.deepcopy(template)
            pcn = f"B{n:06d}"
            claim["identifier"] = [{"system": PCN, "value": pcn}]
            for i, item in enumerate(claim["item"], start=1):
                for ext in item.get("extension", []):
                    ext["valueString"] = f"{pcn}-{i}"
            claim.pop("meta", None)
            ids.append(unit.create(claim, rid=f"bench-{n}").version.id)
    started = time.perf_counter()
    with store.for_tenant(tenant).unit() as unit:
        for cid in ids:
            queue_claim(unit, cid)
    drain(worker)
    submitted = time.perf_counter()
    written = Mailbox(mailbox, Engine(load_config()), use_pyx12=False).process(datetime.now(timezone.utc))
    answered = time.perf_counter()
    with store.for_tenant(tenant).unit() as unit:
        queue_collection(unit)
    drain(worker)
    posted = time.perf_counter()
    inbound = messages(store, tenant)
    with store.for_tenant(tenant).unit() as unit:
        states: dict[str, int] = {}
        for cid in ids:
            code = next((e.get("valueCode") for e in orjson.loads(unit.current("Claim", cid).content).get("extension", [])
                         if e["url"].endswith("/claim-lifecycle")), None)
            states[str(code)] = states.get(str(code), 0) + 1
    engine.dispose()
    return {
        "database": url.split(":")[0], "claims": claims, "answer_files": len(written),
        "submit_seconds": round(submitted - started, 3),
        "submit_claims_per_second": round(claims / (submitted - started), 1),
        "payer_seconds": round(answered - submitted, 3),
        "collect_and_post_seconds": round(posted - answered, 3),
        "collect_and_post_files_per_second": round(len(inbound) / (posted - answered), 1),
        "end_to_end_claims_per_second": round(claims / (posted - started), 1),
        "inbound": {s: sum(1 for m in inbound if m["status"] == s) for s in {m["status"] for m in inbound}},
        "lifecycle": states,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    print(json.dumps(run(args.claims, args.database_url), indent=2))


if __name__ == "__main__":
    main()
