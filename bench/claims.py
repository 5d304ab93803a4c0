"""Claims per second for build + scrub + serialize of a 4-procedure encounter (one process).

Inputs are validated once at the boundary (as the server does when it stores them); the loop
measures what happens for every claim. Run from the repository root:

    python -m bench.claims [--seconds 3] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from datetime import datetime, timezone
from typing import Any

import orjson

from fhir_mappings import ChargeMaster, ClaimInputs, profile_for
from fhir_mappings.claim import claim_from_plan
from fhir_mappings.plan import plan_billing
from fhir_mappings.scrubbing import scrub
from tests.fhir_mappings.mapping_builders import Block, eob, make_encounter_bundle

CREATED = datetime(2025, 1, 20, 15, 0, tzinfo=timezone.utc)


def sample_inputs() -> ClaimInputs:
    """Medicare OT visit: evaluation, therapeutic activities split OT/OTA, manual therapy (NCCI pair)."""
    bundle = make_encounter_bundle(
        blocks=[Block("97165", 0, 40), Block("97140", 40, 15), Block("97530", 55, 15),
                Block("97530", 70, 23, performer="ota-1")],
        extra=[eob("eob-1", "2025-01-06", "97530", "GO", 1200.0)],
    )
    return ClaimInputs.from_resources(bundle)  # validated with fhir.resources R4B, once


def one_claim(inputs: ClaimInputs, n: int, charges: ChargeMaster) -> bytes:
    profile = profile_for(inputs)
    plan = plan_billing(inputs, profile, charges, claim_id=f"claim-{n}")
    claim = claim_from_plan(inputs, plan, claim_id=f"claim-{n}", created=CREATED)
    outcome = scrub(claim, inputs, profile, plan=plan)
    return orjson.dumps({"resourceType": "Bundle", "type": "collection",
                         "entry": [{"resource": claim}, {"resource": outcome}]}, option=orjson.OPT_SORT_KEYS)


def phases(inputs: ClaimInputs, charges: ChargeMaster, rounds: int) -> dict[str, float]:
    """Mean microseconds per claim in each phase."""
    totals = dict.fromkeys(("profile", "plan", "build", "scrub", "serialize"), 0.0)
    clock = time.perf_counter
    for n in range(rounds):
        t0 = clock()
        profile = profile_for(inputs)
        t1 = clock()
        plan = plan_billing(inputs, profile, charges, claim_id=f"claim-{n}")
        t2 = clock()
        claim = claim_from_plan(inputs, plan, claim_id=f"claim-{n}", created=CREATED)
        t3 = clock()
        outcome = scrub(claim, inputs, profile, plan=plan)
        t4 = clock()
        orjson.dumps({"resourceType": "Bundle", "type": "collection",
                      "entry": [{"resource": claim}, {"resource": outcome}]}, option=orjson.OPT_SORT_KEYS)
        t5 = clock()
        for key, dt in zip(totals, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            totals[key] += dt
    return {k: v / rounds * 1e6 for k, v in totals.items()}


def validation_cost(claim: dict[str, Any], rounds: int = 200) -> tuple[float, float]:
    """What we avoid on the hot path: R4B Claim validate and dump, microseconds each."""
    from fhir.resources.R4B.claim import Claim

    t0 = time.perf_counter()
    for _ in range(rounds):
        model = Claim.model_validate(claim)
    t1 = time.perf_counter()
    for _ in range(rounds):
        model.model_dump_json()
    t2 = time.perf_counter()
    return (t1 - t0) / rounds * 1e6, (t2 - t1) / rounds * 1e6


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time (default 3 s)")
    parser.add_argument("--profile", action="store_true", help="also print cProfile's top functions")
    args = parser.parse_args(argv)

    inputs = sample_inputs()
    charges = ChargeMaster.of_inputs(inputs)  # the fee schedule given with the visit
    for n in range(200):  # warm caches (data tables, imports)
        one_claim(inputs, n, charges)

    count, start = 0, time.perf_counter()
    deadline = start + args.seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            one_claim(inputs, count, charges)
            count += 1
    elapsed = time.perf_counter() - start
    rate = count / elapsed
    print(f"claims: {count} in {elapsed:.2f} s  ->  {rate:,.0f} claims/s  ({1e6 / rate:,.0f} us per claim)")

    breakdown = phases(inputs, charges, 2000)
    total = sum(breakdown.values())
    print("per-claim phases (mean over 2000):")
    for name, us in breakdown.items():
        print(f"  {name:<10} {us:8.1f} us  {us / total:6.1%}")

    profile = profile_for(inputs)
    plan = plan_billing(inputs, profile, charges, claim_id="claim-x")
    claim = claim_from_plan(inputs, plan, claim_id="claim-x", created=CREATED)
    validate_us, dump_us = validation_cost(claim)
    print(f"for comparison, fhir.resources R4B Claim: validate {validate_us:,.0f} us, dump {dump_us:,.0f} us "
          f"(not on the hot path; the tests validate)")

    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for n in range(3000):
            one_claim(inputs, n, charges)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())


if __name__ == "__main__":
    main()
