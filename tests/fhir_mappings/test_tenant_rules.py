"""A practice's payer rule packs: the schema refuses bad rules with the path of the bad field, the
pack in force on the date of service applies to claims to its payer only, and its edits hold
(error) or inform (warning) like the catalog's."""
from __future__ import annotations

import base64
import json
from datetime import date
from typing import Any

from fhir.resources.R4B.library import Library
from fhir.resources.R4B.operationoutcome import OperationOutcome

from fhir_mappings import ClaimInputs, generate_planned, outcome_has_errors
from fhir_mappings.outcome import rule_ids
from fhir_mappings.tenant_rules import (RULE_CODE, effective_pack, library_problems, read_pack, rule_pack_library,
                                        rules_problems)
from tests.fhir_mappings.helpers import CREATED
from tests.fhir_mappings.mapping_builders import Block, make_encounter_bundle

PAYER = "Organization/org-payer"
HOLD_97530 = {"id": "no-97530-without-59", "severity": "error",
              "text": "This payer denies 97530 billed with 97110 unless it carries 59: add 59 or hold",
              "match": {"codes": ["97530"], "withCodes": ["97110"], "withoutModifiers": ["59", "XU"]}}


def pack(rules: list[dict[str, Any]], *, version: int = 1, start: str = "2025-01-01", payer: str = PAYER,
         lib_id: str = "lib-1") -> Any:
    lib = rule_pack_library(payer, version, date.fromisoformat(start), rules) | {"id": lib_id}
    assert library_problems(lib) == []
    Library.model_validate(lib)
    return read_pack(lib)


def claim_for(blocks: list[Block], packs: list[Any], *, profile: str = "commercial") -> tuple[dict, dict]:
    inputs = ClaimInputs.from_resources(make_encounter_bundle(blocks=blocks))
    done = generate_planned(inputs, profile=profile, claim_id="c-1", created=CREATED, rule_packs=packs)
    OperationOutcome.model_validate(done.outcome)
    return done.claim, done.outcome


TWO_CODES = [Block("97110", 0, 30), Block("97530", 30, 30)]


def tenant(outcome: dict) -> list[dict]:
    return [i for i in outcome["issue"] if (i.get("details") or {}).get("coding", [{}])[0].get("code") == RULE_CODE]


def test_an_error_rule_holds_the_claim_with_its_text_and_the_line_element() -> None:
    claim, baseline = claim_for(TWO_CODES, [])
    assert not tenant(baseline) and not outcome_has_errors(baseline)
    claim, outcome = claim_for(TWO_CODES, [pack([HOLD_97530])])
    [hit] = tenant(outcome)
    assert hit["severity"] == "error" and outcome_has_errors(outcome)
    line = next(i for i, it in enumerate(claim["item"]) if it["productOrService"]["coding"][0]["code"] == "97530")
    assert hit["expression"] == [f"Claim.item[{line}].modifier"]
    assert HOLD_97530["text"] in hit["details"]["text"]
    assert hit["details"]["coding"][1]["code"] == "no-97530-without-59"
    assert "Library/lib-1 version 1" in hit["diagnostics"]
    assert RULE_CODE in rule_ids(outcome)


def test_a_warning_rule_informs_without_holding() -> None:
    warn = HOLD_97530 | {"severity": "warning"}
    _, outcome = claim_for(TWO_CODES, [pack([warn])])
    [hit] = tenant(outcome)
    assert hit["severity"] == "warning"
    assert not outcome_has_errors(outcome)  # the same claim is clean without the pack


def test_conditions_narrow_the_rule() -> None:
    # 97530 alone: the withCodes condition fails, nothing fires
    _, outcome = claim_for([Block("97530", 0, 30)], [pack([HOLD_97530])])
    assert not tenant(outcome)
    # a profile the claim is not billed under
    _, outcome = claim_for(TWO_CODES, [pack([HOLD_97530 | {"match": HOLD_97530["match"] | {"profiles": ["medicare"]}}])])
    assert not tenant(outcome)
    # a diagnosis prefix the claim has (I69.351), a place of service it has (11)
    rule = HOLD_97530 | {"match": {"codes": ["97530"], "diagnoses": ["I69"], "placesOfService": ["11"]}}
    _, outcome = claim_for(TWO_CODES, [pack([rule])])
    assert [i["expression"] for i in tenant(outcome)] == [["Claim.item[1]"]]


def test_the_pack_of_another_payer_does_not_apply() -> None:
    _, outcome = claim_for(TWO_CODES, [pack([HOLD_97530], payer="Organization/other-payer")])
    assert not tenant(outcome)


def test_the_version_in_force_on_the_date_of_service_applies() -> None:
    old = pack([HOLD_97530 | {"severity": "warning"}], version=1, start="2024-01-01", lib_id="v1")
    new = pack([HOLD_97530], version=2, start="2025-02-01", lib_id="v2")
    # the visit is on 2025-01-14: version 1 is in force, version 2 not yet
    assert effective_pack([old, new], PAYER, date(2025, 1, 14)) is old
    assert effective_pack([old, new], PAYER, date(2025, 2, 1)) is new
    assert effective_pack([old, new], PAYER, date(2023, 12, 31)) is None
    _, outcome = claim_for(TWO_CODES, [old, new])
    assert [i["severity"] for i in tenant(outcome)] == ["warning"]


def _encoded(data: Any) -> dict[str, Any]:
    lib = rule_pack_library(PAYER, 1, date(2025, 1, 1), [])
    lib["content"][0]["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    return lib


def test_the_schema_names_the_bad_field() -> None:
    bad = HOLD_97530 | {"severity": "hold"}
    [(where, text)] = library_problems(_encoded({"rules": [bad]}))
    assert where == ["Library.content[0].data", "Library.content[0].data.rules[0].severity"]
    assert "error, warning" in text
    problems = rules_problems({"rules": [{"id": "x", "text": "t", "severity": "error",
                                          "match": {"codes": ["97530"], "withoutModifier": ["59"], "profiles": ["nope"]}}]})
    assert [p for p, _ in problems] == ["rules[0].match.withoutModifier", "rules[0].match.profiles"]
    assert [p for p, _ in rules_problems({"rules": [HOLD_97530, HOLD_97530]})] == ["rules[1].id"]
    assert [p for p, _ in rules_problems({"rules": [{"id": "x"}]})] == ["rules[0].text", "rules[0].severity",
                                                                        "rules[0].match"]
    assert rules_problems([HOLD_97530])[0][0] == "rules"


def test_the_library_itself_is_checked() -> None:
    lib = rule_pack_library(PAYER, 1, date(2025, 1, 1), [HOLD_97530])
    lib.update(version="two", useContext=[], type={"text": "x"})
    lib["effectivePeriod"] = {"start": "2025-03-01", "end": "2025-02-01"}
    assert [w for w, _ in library_problems(lib)] == [["Library.type"], ["Library.version"],
                                                     ["Library.effectivePeriod.end"], ["Library.useContext"]]
    lib = rule_pack_library(PAYER, 1, date(2025, 1, 1), [HOLD_97530])
    lib["content"][0]["data"] = "not base64!"
    assert [w for w, _ in library_problems(lib)] == [["Library.content[0].data"]]
