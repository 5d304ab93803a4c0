"""Whole-pipeline properties over generated visits: never crashes, always valid FHIR R4,
money adds up, units stay within the chart for each discipline and day."""
from __future__ import annotations

from collections import defaultdict

from tests.fhir_mappings.helpers import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fhir_mappings.mapping_builders import SOPT, Block, care_plan, make_encounter_bundle

from fhir_mappings.tables import cpt_codes
from fhir_mappings.units import units_for_minutes

CODES = ["97165", "97168", "97110", "97112", "97140", "97530", "97535", "97150", "97010", "97035", "97161", "97116"]
PERFORMERS = ["ot-1", "ota-1", "pt-1", "pta-1"]

blocks = st.lists(
    st.tuples(st.sampled_from(CODES), st.integers(1, 40), st.sampled_from(PERFORMERS)),
    min_size=1, max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blocks, st.sampled_from([None, "medicare", "commercial", "workers-comp"]))
def test_any_visit_gives_a_valid_consistent_claim(spec, profile) -> None:  # noqa: ANN001
    offset, built = 0, []
    for code, minutes, performer in spec:
        built.append(Block(code, offset, minutes, performer=performer))
        offset += minutes
    plans = [care_plan("cp-ot", "OT", "2025-01-01", None), care_plan("cp-pt", "PT", "2025-01-01", None)]
    claim, outcome, _ = run(make_encounter_bundle(blocks=built, care_plans=plans, coverage_type=(SOPT, "121")),
                            profile=profile)  # run() validates Claim and OperationOutcome with R4B
    items = claim.get("item", [])
    assert round(sum(i["net"]["value"] for i in items), 2) == claim["total"]["value"]
    timed_units: dict[str, int] = defaultdict(int)
    for it in items:
        code = it["productOrService"]["coding"][0]["code"]
        mods = [m["coding"][0]["code"] for m in it.get("modifier", ())]
        assert it["quantity"]["value"] >= 1
        assert len(it.get("diagnosisSequence", [])) <= 4
        if cpt_codes()[code].timed:
            disc = "OT" if "GO" in mods else "PT"
            timed_units[disc] += it["quantity"]["value"]
        else:
            assert it["quantity"]["value"] == 1
    per_code: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for b in built:
        if cpt_codes()[b.code].timed:
            per_code["OT" if b.performer in ("ot-1", "ota-1") else "PT"][b.code] += b.minutes
    for disc in ("OT", "PT"):
        minutes = per_code[disc]
        if profile in (None, "medicare"):  # the Coverage says Medicare: total-time per discipline
            assert timed_units[disc] == units_for_minutes(sum(minutes.values()))
        else:
            assert timed_units[disc] == sum(units_for_minutes(m) for m in minutes.values())
    assert outcome["issue"]
